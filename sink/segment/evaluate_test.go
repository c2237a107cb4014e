package segment_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/sink/segment"
)

const hysteresisYAML = `version: 1
segments:
  - name: high_value
    rule: rfm_monetary >= 4 and rfm_frequency >= 3
    exit_rule: rfm_monetary < 3
  - name: plain
    rule: views_total >= 10
  - name: dwell
    rule: views_total >= 10
    min_dwell: 24h
  - name: score
    rule: churn_risk >= 0.7
`

func TestEvaluateTransitions(t *testing.T) {
	c := mustParse(t, hysteresisYAML)
	type step struct {
		at    time.Duration // after t0
		input in
		want  []string // changes
		in    []string // membership after
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"enter on rule, stay between thresholds, exit on exit_rule", []step{
			{0, in{}.with("rfm_monetary", 4, "rfm_frequency", 3), []string{"enter high_value"}, []string{"high_value"}},
			{time.Hour, in{}.with("rfm_monetary", 3, "rfm_frequency", 3), nil, []string{"high_value"}},
			{2 * time.Hour, in{}.with("rfm_monetary", 3, "rfm_frequency", 1), nil, []string{"high_value"}},
			{3 * time.Hour, in{}.with("rfm_monetary", 2.9, "rfm_frequency", 5), []string{"exit high_value"}, nil},
			{4 * time.Hour, in{}.with("rfm_monetary", 3, "rfm_frequency", 5), nil, nil},
			{5 * time.Hour, in{}.with("rfm_monetary", 5, "rfm_frequency", 5), []string{"enter high_value"}, []string{"high_value"}},
		}},
		{"without exit_rule: member while rule is true", []step{
			{0, in{}.with("views_total", 10), []string{"enter dwell", "enter plain"}, []string{"dwell", "plain"}},
			{time.Hour, in{}.with("views_total", 9), []string{"exit plain"}, []string{"dwell"}},
			{2 * time.Hour, in{}.with("views_total", 10), []string{"enter plain"}, []string{"dwell", "plain"}},
		}},
		{"min_dwell delays the exit, measured from entry", []step{
			{0, in{}.with("views_total", 10), []string{"enter dwell", "enter plain"}, []string{"dwell", "plain"}},
			{time.Hour, in{}.with("views_total", 0), []string{"exit plain"}, []string{"dwell"}},
			{24*time.Hour - time.Millisecond, in{}.with("views_total", 0), nil, []string{"dwell"}},
			{24 * time.Hour, in{}.with("views_total", 0), []string{"exit dwell"}, nil},
		}},
		{"min_dwell does not delay entry or keep a member whose rule holds", []step{
			{0, in{}.with("views_total", 10), []string{"enter dwell", "enter plain"}, []string{"dwell", "plain"}},
			{48 * time.Hour, in{}.with("views_total", 11), nil, []string{"dwell", "plain"}},
			{49 * time.Hour, in{}.with("views_total", 1), []string{"exit dwell", "exit plain"}, nil},
		}},
		{"unknown never admits; without exit_rule a member leaves on unknown", []step{
			{0, in{}, nil, nil},
			{time.Hour, in{}.with("churn_risk", 0.8), []string{"enter score"}, []string{"score"}},
			{2 * time.Hour, in{}, []string{"exit score"}, nil},
		}},
		{"unknown exit_rule keeps a member", []step{
			{0, in{}.with("rfm_monetary", 5, "rfm_frequency", 3), []string{"enter high_value"}, []string{"high_value"}},
			{time.Hour, in{}.with("rfm_frequency", 3), nil, []string{"high_value"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m segment.Membership
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				next, changes := c.Evaluate(s.input, m, now)
				if got := kinds(changes); !slices.Equal(got, s.want) {
					t.Fatalf("step %d: changes %q, want %q", i, got, s.want)
				}
				if got := next.Segments(); !slices.Equal(got, s.in) && (len(got) > 0 || len(s.in) > 0) {
					t.Fatalf("step %d: membership %q, want %q", i, got, s.in)
				}
				for _, ch := range changes {
					if !ch.At.Equal(now) {
						t.Fatalf("step %d: change at %v, want %v", i, ch.At, now)
					}
					if at, ok := next.EnteredAt(ch.Segment); ch.Kind == segment.Enter && (!ok || !at.Equal(now)) {
						t.Fatalf("step %d: %s entered at %v, want %v", i, ch.Segment, at, now)
					}
				}
				m = next
			}
		})
	}
}

func TestEnterBlockedByExitRule(t *testing.T) {
	// Overlapping rules: entering would be followed by an exit at the next
	// evaluation, so the user does not enter.
	c := mustParse(t, "version: 1\nsegments:\n  - name: s\n    rule: views_total >= 5\n    exit_rule: views_total <= 6\n")
	m, ch := c.Evaluate(in{}.with("views_total", 6), segment.Membership{}, t0)
	if m.Len() != 0 || ch != nil {
		t.Fatalf("entered although exit_rule holds: %v %v", m, ch)
	}
	m, ch = c.Evaluate(in{}.with("views_total", 7), segment.Membership{}, t0)
	if !m.Has("s") || len(ch) != 1 {
		t.Fatalf("did not enter: %v %v", m, ch)
	}
}

// TestHysteresisNoFlapping feeds a value oscillating around the entry
// threshold: with an exit threshold below the oscillation the user enters
// once and never leaves; without one, every crossing is a change.
func TestHysteresisNoFlapping(t *testing.T) {
	c := mustParse(t, `version: 1
segments:
  - name: banded
    rule: purchase_propensity >= 0.8
    exit_rule: purchase_propensity < 0.6
  - name: plain
    rule: purchase_propensity >= 0.8
`)
	rng := rand.New(rand.NewPCG(1, 2))
	var m segment.Membership
	counts := map[string]int{}
	for i := 0; i < 1000; i++ {
		v := 0.8 + (rng.Float64()-0.5)*0.1 // 0.75 … 0.85
		var changes []segment.Change
		m, changes = c.Evaluate(in{}.with("purchase_propensity", v), m, t0.Add(time.Duration(i)*time.Minute))
		for _, ch := range changes {
			counts[ch.Kind.String()+" "+ch.Segment]++
		}
	}
	if counts["enter banded"] != 1 || counts["exit banded"] != 0 {
		t.Errorf("banded segment changed %v times, want one entry", counts)
	}
	if counts["enter plain"] < 100 || counts["exit plain"] < 100 {
		t.Errorf("plain segment changed only %v times: the input does not oscillate", counts)
	}
}

func TestReasons(t *testing.T) {
	c := mustParse(t, `version: 1
segments:
  - name: high_value
    rule: rfm_monetary >= 4 and rfm_frequency >= 3 and top_category_root == "electronics"
    exit_rule: rfm_monetary < 3 or decile(clv_90d) <= 2
    min_dwell: 1h
  - name: plain
    rule: '"apple" in brand_top or churn_risk > 0.5'
`)
	x := in{}.with("rfm_monetary", 5, "rfm_frequency", 3, "category_root", []string{"electronics", "apparel"}, "brand", []string{"samsung", "apple"})
	m, ch := c.Evaluate(x, segment.Membership{}, t0)
	if len(ch) != 2 {
		t.Fatalf("changes %v", ch)
	}
	want := []string{
		`enter high_value at 2019-10-01T00:00:00Z: rule "rfm_monetary >= 4 and rfm_frequency >= 3 and top_category_root == \"electronics\"" with rfm_monetary = 5, rfm_frequency = 3, top_category_root = "electronics"`,
		`enter plain at 2019-10-01T00:00:00Z: rule "\"apple\" in brand_top or churn_risk > 0.5" with brand_top = ["samsung", "apple"], churn_risk = missing`,
	}
	for i, c := range ch {
		if c.String() != want[i] {
			t.Errorf("change %d:\n got %s\nwant %s", i, c, want[i])
		}
	}
	hv := ch[0].Reason
	if hv.Field != "rule" || len(hv.Values) != 3 || hv.Values[0].Name != "rfm_monetary" || hv.Values[0].Num != 5 || hv.Values[2].Str != "electronics" {
		t.Errorf("structured reason %+v", hv)
	}

	y := x.with("rfm_monetary", 2, "clv_90d", decile(5), "brand", []string{})
	_, ch = c.Evaluate(y, m, t0.Add(2*time.Hour))
	want = []string{
		`exit high_value at 2019-10-01T02:00:00Z: exit_rule "rfm_monetary < 3 or decile(clv_90d) <= 2" with rfm_monetary = 2, decile(clv_90d) = 5; after min_dwell 1h0m0s since entering at 2019-10-01T00:00:00Z`,
		`exit plain at 2019-10-01T02:00:00Z: rule "\"apple\" in brand_top or churn_risk > 0.5" with brand_top = [], churn_risk = missing`,
	}
	if got := []string{ch[0].String(), ch[1].String()}; !slices.Equal(got, want) {
		t.Errorf("exits:\n got %q\nwant %q", got, want)
	}
}

func TestRemovedSegmentExits(t *testing.T) {
	old := mustParse(t, "version: 1\nsegments:\n  - {name: a, rule: views_total > 1}\n  - {name: b, rule: views_total > 1}\n  - {name: c, rule: views_total > 1}\n")
	m, _ := old.Evaluate(in{}.with("views_total", 5), segment.Membership{}, t0)
	renamed := mustParse(t, "version: 1\nsegments:\n  - {name: b, rule: views_total > 1}\n  - {name: d, rule: views_total > 1}\n")
	next, ch := renamed.Evaluate(in{}.with("views_total", 5), m, t0.Add(time.Hour))
	if got, want := kinds(ch), []string{"exit a", "exit c", "enter d"}; !slices.Equal(got[:2], want[:2]) || len(got) != 3 {
		t.Fatalf("changes %q, want %q", got, want)
	}
	if got := next.Segments(); !slices.Equal(got, []string{"b", "d"}) {
		t.Fatalf("membership %q", got)
	}
	if at, _ := next.EnteredAt("b"); !at.Equal(t0) {
		t.Fatalf("b re-entered at %v", at)
	}
	if ch[0].Reason.String() != "segment no longer in the catalogue" {
		t.Fatalf("reason %q", ch[0].Reason)
	}
}

func TestEvaluateNoChangeReturnsPrev(t *testing.T) {
	c := mustParse(t, hysteresisYAML)
	x := in{}.with("views_total", 20, "rfm_monetary", 5, "rfm_frequency", 5, "churn_risk", 0.1)
	var input segment.Input = x // converted once: the conversion allocates
	m, _ := c.Evaluate(input, segment.Membership{}, t0)
	allocs := testing.AllocsPerRun(100, func() {
		next, ch := c.Evaluate(input, m, t0.Add(time.Hour))
		if ch != nil || !next.Equal(m) {
			t.Fatal("changed")
		}
	})
	if allocs != 0 {
		t.Fatalf("Evaluate allocated %v times without a change", allocs)
	}
}

// randomCatalogue builds a catalogue over a few features with random
// thresholds, exit rules and dwell times.
func randomCatalogue(t testing.TB, rng *rand.Rand) *segment.Catalogue {
	var b strings.Builder
	b.WriteString("version: 1\nsegments:\n")
	feats := []string{"views_total", "carts_total", "churn_risk", "days_since_last_seen"}
	for i := 0; i < 8; i++ {
		f, g := feats[rng.IntN(len(feats))], feats[rng.IntN(len(feats))]
		fmt.Fprintf(&b, "  - name: s%d\n    rule: %s >= %d and (%s < %d or not %s == %d)\n", i, f, rng.IntN(5), g, rng.IntN(5), f, rng.IntN(5))
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, "    exit_rule: %s < %d\n", f, rng.IntN(5))
		}
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&b, "    min_dwell: %dh\n", rng.IntN(4))
		}
	}
	return mustParse(t, b.String())
}

func randomInput(rng *rand.Rand) in {
	x := in{}.with()
	for _, f := range []string{"views_total", "carts_total", "churn_risk", "days_since_last_seen"} {
		if rng.IntN(6) > 0 {
			x.vals[f] = float64(rng.IntN(6))
		}
	}
	return x
}

// TestEvaluateProperties: Evaluate is deterministic, leaves prev unchanged,
// and its changes are exactly the difference between prev and next, with
// entry times kept for stayers and set to now for entrants.
func TestEvaluateProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := 0; trial < 200; trial++ {
		c := randomCatalogue(t, rng)
		var m segment.Membership
		now := t0
		for step := 0; step < 20; step++ {
			now = now.Add(time.Duration(rng.IntN(3)) * time.Hour)
			x := randomInput(rng)
			before := m.String()
			next, changes := c.Evaluate(x, m, now)
			next2, changes2 := c.Evaluate(x, m, now)
			if !next.Equal(next2) || fmt.Sprint(changes) != fmt.Sprint(changes2) {
				t.Fatalf("not deterministic: %v %v vs %v %v", next, changes, next2, changes2)
			}
			if m.String() != before {
				t.Fatalf("prev changed from %s to %s", before, m)
			}
			// changes ⇔ symmetric difference.
			var want []string
			for _, s := range c.Segments() {
				was, is := m.Has(s.Name), next.Has(s.Name)
				switch {
				case !was && is:
					want = append(want, "enter "+s.Name)
				case was && !is:
					want = append(want, "exit "+s.Name)
				case was && is:
					a, _ := m.EnteredAt(s.Name)
					b, _ := next.EnteredAt(s.Name)
					if !a.Equal(b) {
						t.Fatalf("%s entry time changed from %v to %v", s.Name, a, b)
					}
				}
			}
			slices.SortFunc(want, func(a, b string) int {
				return strings.Compare(strings.Fields(a)[1], strings.Fields(b)[1])
			})
			if got := kinds(changes); !slices.Equal(got, want) {
				t.Fatalf("changes %q, membership %v → %v (want %q)", got, m, next, want)
			}
			for _, ch := range changes {
				if at, _ := next.EnteredAt(ch.Segment); ch.Kind == segment.Enter && !at.Equal(now) {
					t.Fatalf("entered at %v, now %v", at, now)
				}
				if ch.Reason.Rule == "" || ch.Reason.Field == "" {
					t.Fatalf("change without a reason: %+v", ch)
				}
			}
			// Each change's reason lists every name of its rule.
			for _, ch := range changes {
				s, _ := c.Segment(ch.Segment)
				r := s.Rule
				if ch.Reason.Field == "exit_rule" {
					r = s.ExitRule
				}
				var names []string
				for _, v := range ch.Reason.Values {
					names = append(names, v.Name)
				}
				if !slices.Equal(names, r.Refs()) {
					t.Fatalf("reason names %q, rule refs %q", names, r.Refs())
				}
			}
			m = next
		}
	}
}
