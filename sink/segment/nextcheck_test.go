package segment_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/sink/segment"
)

const day = 24 * time.Hour

// clockUser is a user whose clocks are computed from event times the way
// features computes them, at any evaluation time.
type clockUser struct {
	lastSeen, firstSeen, lastPurchase time.Time // zero lastPurchase: never
	other                             map[string]float64
}

func (u clockUser) at(t time.Time) in {
	x := in{}.with()
	days := func(since time.Time) float64 {
		return float64(t.UnixMilli()-since.UnixMilli()) / float64(day/time.Millisecond)
	}
	x.vals["days_since_last_seen"] = days(u.lastSeen)
	x.vals["tenure_days"] = days(u.firstSeen)
	x.vals["days_since_last_purchase"] = -1
	if !u.lastPurchase.IsZero() {
		x.vals["days_since_last_purchase"] = days(u.lastPurchase)
	}
	for k, v := range u.other {
		x.vals[k] = v
	}
	return x
}

func TestNextCheckSilent(t *testing.T) {
	c := mustParse(t, `version: 1
segments:
  - name: silent
    rule: days_since_last_seen >= 7d and days_since_last_seen < 90d
    time_relative: true
`)
	u := clockUser{lastSeen: t0.Add(-2 * day), firstSeen: t0.Add(-30 * day)}
	m, ch := c.Evaluate(u.at(t0), segment.Membership{}, t0)
	if ch != nil {
		t.Fatalf("changes at t0: %v", ch)
	}
	next, ok := c.NextCheck(u.at(t0), m, t0)
	if want := u.lastSeen.Add(7*day + time.Millisecond); !ok || !next.Equal(want) {
		t.Fatalf("NextCheck = %v, %v; want last_seen + 7d + 1ms = %v", next, ok, want)
	}
	m, ch = c.Evaluate(u.at(next), m, next)
	if len(ch) != 1 || ch[0].Kind != segment.Enter {
		t.Fatalf("at the timer: %v", ch)
	}
	if !strings.Contains(ch[0].Reason.String(), "days_since_last_seen = 7.0000000") {
		t.Fatalf("reason %q", ch[0].Reason)
	}
	next, ok = c.NextCheck(u.at(next), m, next)
	if want := u.lastSeen.Add(90*day + time.Millisecond); !ok || !next.Equal(want) {
		t.Fatalf("second NextCheck = %v, %v; want last_seen + 90d + 1ms = %v", next, ok, want)
	}
	m, ch = c.Evaluate(u.at(next), m, next)
	if len(ch) != 1 || ch[0].Kind != segment.Exit || m.Len() != 0 {
		t.Fatalf("at the second timer: %v %v", ch, m)
	}
	if next, ok := c.NextCheck(u.at(next), m, next); ok {
		t.Fatalf("third NextCheck = %v, want none", next)
	}
}

func TestNextCheckCases(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string // segments only
		user   clockUser
		member map[string]time.Time
		want   time.Duration // after t0; -1: none
	}{
		{"not time-relative: no timer",
			"  - name: s\n    rule: days_since_last_seen >= 7d\n",
			clockUser{lastSeen: t0, firstSeen: t0}, nil, -1},
		{"rule that can never hold: no timer",
			"  - name: s\n    rule: days_since_last_seen >= 7d and views_total > 1\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0, other: map[string]float64{"views_total": 0}}, nil, -1},
		{"strict comparison fires just after the threshold",
			"  - name: s\n    rule: days_since_last_seen > 1d\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0}, nil, day + time.Millisecond},
		{"a comparison exactly at its threshold fires 1ms later",
			"  - name: s\n    rule: days_since_last_seen > 1d\n    time_relative: true\n",
			clockUser{lastSeen: t0.Add(-day), firstSeen: t0.Add(-day)}, nil, time.Millisecond},
		{"never purchased: days_since_last_purchase stays -1",
			"  - name: s\n    rule: days_since_last_purchase >= 30d\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0}, nil, -1},
		{"purchased: days_since_last_purchase advances",
			"  - name: s\n    rule: days_since_last_purchase >= 30d\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0, lastPurchase: t0.Add(-10 * day)}, nil, 20*day + time.Millisecond},
		{"member of new leaves when tenure reaches 7d",
			"  - name: new\n    rule: tenure_days < 7d\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0.Add(-36 * time.Hour)}, map[string]time.Time{"new": t0.Add(-36 * time.Hour)}, 5*day + 12*time.Hour + time.Millisecond},
		{"the earliest crossing that changes the decision wins, not the earliest crossing",
			"  - name: s\n    rule: days_since_last_seen >= 1d and tenure_days >= 10d\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0.Add(-2 * day)}, nil, 8*day + time.Millisecond},
		{"exit_rule crossing for a member",
			"  - name: s\n    rule: days_since_last_seen < 1d\n    exit_rule: days_since_last_seen >= 3d\n    time_relative: true\n",
			clockUser{lastSeen: t0.Add(-2 * day), firstSeen: t0.Add(-9 * day)}, map[string]time.Time{"s": t0.Add(-2 * day)}, day + time.Millisecond},
		{"min_dwell postpones a time-relative exit",
			"  - name: s\n    rule: days_since_last_seen < 1d\n    min_dwell: 3d\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0}, map[string]time.Time{"s": t0}, 3 * day},
		{"pending exit held by min_dwell: timer at the end of the dwell, time-relative or not",
			"  - name: s\n    rule: views_total > 10\n    min_dwell: 24h\n",
			clockUser{lastSeen: t0, firstSeen: t0, other: map[string]float64{"views_total": 5}}, map[string]time.Time{"s": t0.Add(-time.Hour)}, 23 * time.Hour},
		{"min_dwell without a pending exit: no timer",
			"  - name: s\n    rule: views_total > 10\n    min_dwell: 24h\n",
			clockUser{lastSeen: t0, firstSeen: t0, other: map[string]float64{"views_total": 50}}, map[string]time.Time{"s": t0.Add(-time.Hour)}, -1},
		{"stale membership: evaluate now",
			"  - name: s\n    rule: views_total > 10\n",
			clockUser{lastSeen: t0, firstSeen: t0, other: map[string]float64{"views_total": 50}}, nil, 0},
		{"stale membership of a removed segment: evaluate now",
			"  - name: s\n    rule: views_total > 10\n",
			clockUser{lastSeen: t0, firstSeen: t0}, map[string]time.Time{"gone": t0}, 0},
		{"earliest of several segments",
			"  - name: a\n    rule: days_since_last_seen >= 7d\n    time_relative: true\n  - name: b\n    rule: days_since_last_seen >= 36h\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0}, nil, 36*time.Hour + time.Millisecond},
		{"two clocks advancing together never cross",
			"  - name: s\n    rule: days_since_last_seen >= tenure_days\n    time_relative: true\n",
			clockUser{lastSeen: t0.Add(-time.Hour), firstSeen: t0.Add(-2 * time.Hour)}, nil, -1},
		{"a stopped clock (never purchased, -1) never meets a running one",
			"  - name: s\n    rule: days_since_last_purchase >= days_since_last_seen\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0}, nil, -1},
		{"a clock crosses a constant feature",
			"  - name: s\n    rule: days_since_last_seen >= views_total\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0, other: map[string]float64{"views_total": 2}}, nil, 2*day + time.Millisecond},
		{"beyond 100 years: none",
			"  - name: s\n    rule: days_since_last_seen >= 40000d\n    time_relative: true\n",
			clockUser{lastSeen: t0, firstSeen: t0}, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, "version: 1\nsegments:\n"+tt.yaml)
			m, err := segment.NewMembership(tt.member)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := c.NextCheck(tt.user.at(t0), m, t0)
			if tt.want < 0 {
				if ok {
					t.Fatalf("NextCheck = %v (t0%+v), want none", got, got.Sub(t0))
				}
				return
			}
			if !ok || !got.Equal(t0.Add(tt.want)) {
				t.Fatalf("NextCheck = t0%+v, %v; want t0%+v", got.Sub(t0), ok, tt.want)
			}
			if _, ch := c.Evaluate(tt.user.at(got), m, got); len(ch) == 0 {
				t.Fatalf("no change when the timer fires at t0%+v", got.Sub(t0))
			}
		})
	}
}

// TestNextCheckMatchesBruteForce compares NextCheck with a scan that
// evaluates random time-relative segments every simulated 10 minutes: the
// timer is the first time the membership would change, to the millisecond.
func TestNextCheckMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	clocks := []string{"days_since_last_seen", "tenure_days", "days_since_last_purchase"}
	ops := []string{"<", "<=", ">", ">="}
	pred := func() string {
		if rng.IntN(5) == 0 {
			return fmt.Sprintf("views_total %s %d", ops[rng.IntN(4)], rng.IntN(4))
		}
		c := clocks[rng.IntN(len(clocks))]
		if rng.IntN(4) == 0 {
			return fmt.Sprintf("%s between %dh and %.3fd", c, rng.IntN(100), 4+rng.Float64()*10)
		}
		return fmt.Sprintf("%s %s %.4fd", c, ops[rng.IntN(4)], rng.Float64()*14)
	}
	expr := func() string {
		switch rng.IntN(3) {
		case 0:
			return pred()
		case 1:
			return pred() + " and (" + pred() + " or not " + pred() + ")"
		}
		return pred() + " or " + pred()
	}
	const step = 10 * time.Minute
	compared := 0 // trials in which the scan found a change
	for trial := 0; trial < 150; trial++ {
		var b strings.Builder
		b.WriteString("version: 1\nsegments:\n")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(&b, "  - name: s%d\n    rule: %s\n    time_relative: true\n", i, expr())
			if rng.IntN(2) == 0 {
				fmt.Fprintf(&b, "    exit_rule: %s\n", expr())
			}
			if rng.IntN(3) == 0 {
				fmt.Fprintf(&b, "    min_dwell: %dh\n", rng.IntN(72))
			}
		}
		c, err := segment.Parse("t.yaml", []byte(b.String()), segment.Config{})
		if err != nil {
			continue // a random clock-free pair with time_relative
		}
		u := clockUser{
			lastSeen:  t0.Add(-time.Duration(rng.Int64N(int64(3 * day)))),
			firstSeen: t0.Add(-time.Duration(rng.Int64N(int64(10 * day)))),
			other:     map[string]float64{"views_total": float64(rng.IntN(4))},
		}
		if rng.IntN(2) == 0 {
			u.lastPurchase = t0.Add(-time.Duration(rng.Int64N(int64(5 * day))))
		}
		// Start from a random membership and settle it at t0.
		start := map[string]time.Time{}
		for i := 0; i < 3; i++ {
			if rng.IntN(2) == 0 {
				start[fmt.Sprintf("s%d", i)] = t0.Add(-time.Duration(rng.Int64N(int64(2 * day))))
			}
		}
		m, _ := segment.NewMembership(start)
		m, _ = c.Evaluate(u.at(t0), m, t0)

		got, ok := c.NextCheck(u.at(t0), m, t0)
		var first time.Time // first scanned time with a change
		for tm := t0.Add(step); tm.Before(t0.Add(30 * day)); tm = tm.Add(step) {
			if _, ch := c.Evaluate(u.at(tm), m, tm); ch != nil {
				first = tm
				break
			}
		}
		if first.IsZero() {
			if ok && got.Before(t0.Add(30*day-step)) {
				if _, ch := c.Evaluate(u.at(got), m, got); ch != nil {
					// A change inside a gap of the scan (shorter than step).
					continue
				}
				t.Fatalf("%s\nNextCheck = t0%+v but nothing changes within 30 days", b.String(), got.Sub(t0))
			}
			continue
		}
		if !ok || got.After(first) || !got.After(first.Add(-step)) {
			t.Fatalf("%s\nuser %+v membership %v\nNextCheck = t0%+v, %v; scan finds the first change in (t0%+v, t0%+v]",
				b.String(), u, m, got.Sub(t0), ok, first.Add(-step).Sub(t0), first.Sub(t0))
		}
		if _, ch := c.Evaluate(u.at(got), m, got); ch == nil {
			t.Fatalf("%s\nno change at NextCheck t0%+v", b.String(), got.Sub(t0))
		}
		compared++
		// NextCheck rounds the exact crossing up to a whole millisecond and
		// adds one, so that strict comparisons have flipped: it is at most
		// 2ms late.
		if early := got.Add(-3 * time.Millisecond); early.After(t0) {
			if _, ch := c.Evaluate(u.at(early), m, early); ch != nil {
				t.Fatalf("%s\nuser %+v membership %v\nchange already at NextCheck - 3ms (t0%+v): %v", b.String(), u, m, got.Sub(t0), ch)
			}
		}
	}
	if compared < 75 {
		t.Fatalf("only %d of 150 trials had a change to compare", compared)
	}
}
