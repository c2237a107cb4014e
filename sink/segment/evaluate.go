package segment

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ChangeKind says whether a user entered or left a segment.
type ChangeKind uint8

// The change kinds.
const (
	Enter ChangeKind = iota + 1
	Exit
)

func (k ChangeKind) String() string {
	switch k {
	case Enter:
		return "enter"
	case Exit:
		return "exit"
	}
	return "unknown"
}

// Change is one membership transition.
type Change struct {
	Segment string
	Kind    ChangeKind
	// At is the evaluation time: the entry time recorded for an Enter.
	At     time.Time
	Reason Reason
}

// String formats the change for people, for example
//
//	enter high_value at 2019-10-01T02:00:00Z: rule "rfm_monetary >= 4" with rfm_monetary = 5
func (c Change) String() string {
	return c.Kind.String() + " " + c.Segment + " at " + c.At.UTC().Format(time.RFC3339Nano) + ": " + c.Reason.String()
}

// Reason explains a Change in terms a marketer can check: the rule that
// decided and the value of every name it references.
type Reason struct {
	// Field is the rule that decided: "rule" or "exit_rule"; empty when the
	// segment was removed from the catalogue.
	Field string
	// Rule is that rule's text.
	Rule string
	// Values lists every name Rule references with its value, in order of
	// first appearance in the rule.
	Values []Value
	// Note adds what else decided: the min_dwell an exit waited for, or
	// that the segment is no longer in the catalogue.
	Note string
}

// String formats the reason, for example
//
//	rule "rfm_monetary >= 4" with rfm_monetary = 5
func (r Reason) String() string {
	var b strings.Builder
	if r.Field != "" {
		b.WriteString(r.Field)
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(r.Rule))
		for i, v := range r.Values {
			if i == 0 {
				b.WriteString(" with ")
			} else {
				b.WriteString(", ")
			}
			b.WriteString(v.String())
		}
	}
	if r.Note != "" {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.Note)
	}
	return b.String()
}

// noteRemoved is the Reason.Note of an exit from a segment the catalogue no
// longer defines.
const noteRemoved = "segment no longer in the catalogue"

// Evaluate evaluates every segment for one user at now (event time) and
// returns the new membership and the transitions from prev, ordered by
// segment name. A non-member enters when Rule is true and ExitRule, if any,
// is not true. A member leaves when ExitRule is true (without one, when
// Rule is not true), and not before MinDwell has passed since it entered.
// A member of a segment the
// catalogue no longer defines leaves it. Evaluate is deterministic and
// does not change prev; when nothing changes it returns prev itself and a
// nil slice, without allocating.
func (c *Catalogue) Evaluate(in Input, prev Membership, now time.Time) (next Membership, changes []Change) {
	b := transition{prev: prev.e, now: now}
	nowMs := now.UnixMilli()
	for _, si := range c.sorted {
		s := &c.segs[si]
		for b.j < len(prev.e) && prev.e[b.j].name < s.Name {
			b.removed()
		}
		if b.j < len(prev.e) && prev.e[b.j].name == s.Name {
			if x := prev.e[b.j]; s.decide(in, true, x.at, nowMs) {
				b.keep()
			} else {
				b.change(Change{Segment: s.Name, Kind: Exit, Reason: s.exitReason(in, x.at)}, nil)
			}
			continue
		}
		if s.decide(in, false, 0, nowMs) {
			b.change(Change{Segment: s.Name, Kind: Enter, Reason: Reason{Field: "rule", Rule: s.Rule.src, Values: s.Rule.Values(in)}},
				&member{name: s.Name, at: nowMs})
		}
	}
	for b.j < len(prev.e) {
		b.removed()
	}
	if b.out == nil {
		return prev, nil
	}
	return Membership{e: b.out}, b.changes
}

// transition builds the next membership from prev, copying only once
// something changes.
type transition struct {
	prev    []member
	j       int      // next entry of prev
	out     []member // nil until the first change
	changes []Change
	now     time.Time
}

// keep keeps prev[j].
func (b *transition) keep() {
	if b.out != nil {
		b.out = append(b.out, b.prev[b.j])
	}
	b.j++
}

// removed drops prev[j], a segment the catalogue no longer has.
func (b *transition) removed() {
	b.change(Change{Segment: b.prev[b.j].name, Kind: Exit, Reason: Reason{Note: noteRemoved}}, nil)
}

// change records ch. For an entry, add is the new member; otherwise the
// change drops prev[j].
func (b *transition) change(ch Change, add *member) {
	if b.out == nil {
		// Unchanged so far: the output is the prev entries consumed.
		b.out = append(make([]member, 0, len(b.prev)+2), b.prev[:b.j]...)
	}
	if add != nil {
		b.out = append(b.out, *add)
	} else {
		b.j++
	}
	ch.At = b.now
	b.changes = append(b.changes, ch)
}

func (s *Segment) exitReason(in Input, enteredMs int64) Reason {
	r := Reason{Field: "rule", Rule: s.Rule.src}
	if s.ExitRule != nil {
		r = Reason{Field: "exit_rule", Rule: s.ExitRule.src, Values: s.ExitRule.Values(in)}
	} else {
		r.Values = s.Rule.Values(in)
	}
	if s.MinDwell > 0 {
		r.Note = "after min_dwell " + s.MinDwell.String() + " since entering at " +
			time.UnixMilli(enteredMs).UTC().Format(time.RFC3339Nano)
	}
	return r
}

const (
	dayMs = 24 * 60 * 60 * 1000
	// horizonDays bounds how far ahead NextCheck looks.
	horizonDays = 36500
)

// NextCheck returns the earliest time after now at which evaluating m's
// user again would change its membership if no event arrives meanwhile,
// so that the caller can set a timer; false when there is none within 100
// years. m is the membership Evaluate returned for now.
//
// Two things change with time alone. For segments with TimeRelative, the
// clocks (Names.Clocks: days_since_*, tenure_days) grow by one per day;
// every comparison between a clock and a value that does not grow (a
// literal, another feature) flips at a computable time, and between two
// such times no rule changes. For every segment, an exit held back by
// MinDwell becomes due when the dwell ends. NextCheck evaluates each
// segment at each of these times in order, with the clocks advanced and
// every other input held constant, and reports the first time at which a
// decision changes. Times are rounded up to the next millisecond plus one,
// so that a strict comparison (days_since_last_seen > 7) has flipped by
// then. Features that decay or slide without events (activity_*, views_24h,
// rfm_recency) are held constant: a rule that depends only on them is
// re-evaluated at the next event or at another segment's timer, and a
// timer can find nothing to change when one of them moved meanwhile (the
// caller then asks NextCheck again). If m is
// stale (evaluating at now would already change it), NextCheck returns now.
func (c *Catalogue) NextCheck(in Input, m Membership, now time.Time) (time.Time, bool) {
	nowMs := now.UnixMilli()
	best := int64(math.MaxInt64)
	for _, x := range m.e {
		if _, ok := c.Segment(x.name); !ok {
			return now, true // Evaluate would remove it
		}
	}
	sh := &shifted{in: in, v: c.v}
	var daysBuf [16]float64
	var timesBuf [16]int64
	for si := range c.segs {
		s := &c.segs[si]
		var member bool
		var enteredMs int64
		if i, ok := m.find(s.Name); ok {
			member, enteredMs = true, m.e[i].at
		}
		if s.decide(in, member, enteredMs, nowMs) != member {
			return now, true
		}
		times := timesBuf[:0]
		if s.TimeRelative {
			days := s.Rule.root.crossings(in, daysBuf[:0])
			if s.ExitRule != nil {
				days = s.ExitRule.root.crossings(in, days)
			}
			for _, d := range days {
				if d <= horizonDays {
					times = append(times, nowMs+int64(math.Ceil(d*dayMs))+1)
				}
			}
		}
		if dwell := s.MinDwell.Milliseconds(); member && dwell > 0 && enteredMs+dwell > nowMs {
			times = append(times, enteredMs+dwell)
		}
		slices.Sort(times)
		for k, t := range times {
			if t >= best {
				break
			}
			if k > 0 && t == times[k-1] {
				continue
			}
			var at Input = in
			if s.TimeRelative {
				sh.days = float64(t-nowMs) / dayMs
				at = sh
			}
			if s.decide(at, member, enteredMs, t) != member {
				best = t
				break
			}
		}
	}
	if best == math.MaxInt64 {
		return time.Time{}, false
	}
	return time.UnixMilli(best).In(now.Location()), true
}

// shifted is an Input days later: clocks that have started are advanced,
// everything else is unchanged.
type shifted struct {
	in   Input
	v    *vocab
	days float64
}

func (s *shifted) Value(name string) (float64, bool) {
	x, ok := s.in.Value(name)
	if ok && x >= 0 && s.v.idents[name].clock {
		x += s.days
	}
	return x, ok
}

func (s *shifted) Top(dim string) []string { return s.in.Top(dim) }

func (s *shifted) Decile(score string) (int, bool) { return s.in.Decile(score) }
