package segment_test

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream/source"
)

func defaultCatalogue(t testing.TB) *segment.Catalogue {
	t.Helper()
	c, err := segment.Default()
	if err != nil {
		t.Fatalf("default catalogue: %v", err)
	}
	return c
}

func TestDefaultYAML(t *testing.T) {
	disk, err := os.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, segment.DefaultYAML()) {
		t.Fatal("DefaultYAML differs from default.yaml")
	}
	c := defaultCatalogue(t)
	if c.File() != "default.yaml" {
		t.Fatalf("File = %q", c.File())
	}
	// DefaultYAML returns a copy.
	b := segment.DefaultYAML()
	b[0] = 'X'
	if segment.DefaultYAML()[0] == 'X' {
		t.Fatal("DefaultYAML shares its bytes")
	}
}

// quietBuyer is the starting point of the default segment table: a known
// user seen an hour ago, who bought once for 30 and has no cart pending.
var quietBuyer = in{}.with(
	"views_total", 12, "carts_total", 1, "purchases_total", 1, "revenue_total", 30,
	"rfm_monetary", 1, "rfm_frequency", 1, "sessions_total", 2, "activity_7d", 5,
	"days_since_last_seen", 1.0/24, "tenure_days", 30, "days_since_last_purchase", 10,
	"carts_24h", 0, "abandoned_cart_sessions", 0, "cart_abandon_rate", 0,
	"category_root", []string{"apparel", "electronics"}, "brand", []string{"nike"},
)

// TestDefaultSegments exercises every rule of the default catalogue: for
// each segment, inputs that admit and that do not admit a non-member, and
// for segments with an exit_rule, inputs that keep and that release a
// member (who entered long enough ago for min_dwell not to matter).
func TestDefaultSegments(t *testing.T) {
	type tc struct {
		desc   string
		member bool // a member before
		input  in
		want   bool // a member after
	}
	b := quietBuyer
	tests := map[string][]tc{
		"high_value": {
			{"spent 500+ over 3+ purchases", false, b.with("rfm_monetary", 4, "rfm_frequency", 3), true},
			{"spent 1000+ over 10+", false, b.with("rfm_monetary", 5, "rfm_frequency", 5), true},
			{"only 2 purchases", false, b.with("rfm_monetary", 5, "rfm_frequency", 2), false},
			{"only 200–500 spent", false, b.with("rfm_monetary", 3, "rfm_frequency", 5), false},
			{"member no longer qualifies", true, b.with("rfm_monetary", 3, "rfm_frequency", 5), false},
		},
		"normal_value": {
			{"spent 50+", false, b.with("rfm_monetary", 2, "rfm_frequency", 1), true},
			{"spent 500+ with 2 purchases", false, b.with("rfm_monetary", 4, "rfm_frequency", 2), true},
			{"high value instead", false, b.with("rfm_monetary", 4, "rfm_frequency", 3), false},
			{"under 50", false, b, false},
		},
		"low_value": {
			{"bought under 50", false, b, true},
			{"bought for nothing", false, b.with("revenue_total", 0, "rfm_monetary", 0), true},
			{"spent 50+", false, b.with("rfm_monetary", 2), false},
			{"never bought", false, b.with("purchases_total", 0, "rfm_monetary", 0), false},
		},
		"new": {
			{"first seen 2 days ago", false, b.with("tenure_days", 2), true},
			{"first seen 7 days ago", false, b.with("tenure_days", 7), false},
			{"member reaching 7 days", true, b.with("tenure_days", 7.0001), false},
		},
		"active_high_frequency": {
			{"busy, 3 sessions, seen an hour ago", false, b.with("activity_7d", 25, "sessions_total", 3), true},
			{"busy but 2 sessions", false, b.with("activity_7d", 25, "sessions_total", 2), false},
			{"busy, 3 sessions, seen yesterday", false, b.with("activity_7d", 25, "sessions_total", 3, "days_since_last_seen", 1), false},
			{"member cooling down stays", true, b.with("activity_7d", 12, "days_since_last_seen", 3), true},
			{"member at half activity leaves", true, b.with("activity_7d", 9.9), false},
			{"member silent for 7 days leaves", true, b.with("activity_7d", 30, "days_since_last_seen", 7), false},
		},
		"at_risk": {
			{"buyer silent 14 days", false, b.with("days_since_last_seen", 14), true},
			{"buyer flagged by the churn model", false, b.with("churn_risk", 0.8), true},
			{"buyer, low churn risk, seen today", false, b.with("churn_risk", 0.2), false},
			{"buyer, no churn score, seen today", false, b, false},
			{"non-buyer silent 14 days", false, b.with("purchases_total", 0, "days_since_last_seen", 20), false},
			{"churned buyer", false, b.with("days_since_last_seen", 90), false},
			{"member back after a visit", true, b.with("churn_risk", 0.3), false},
		},
		"silent": {
			{"7 days without activity", false, b.with("days_since_last_seen", 7), true},
			{"6.9 days", false, b.with("days_since_last_seen", 6.9), false},
			{"90 days: churned instead", false, b.with("days_since_last_seen", 90), false},
			{"member who came back", true, b, false},
		},
		"churned": {
			{"90 days without activity", false, b.with("days_since_last_seen", 90), true},
			{"89 days", false, b.with("days_since_last_seen", 89), false},
		},
		"high_propensity": {
			{"top decile", false, b.with("purchase_propensity", decile(10)), true},
			{"decile 9", false, b.with("purchase_propensity", decile(9)), true},
			{"decile 8", false, b.with("purchase_propensity", decile(8)), false},
			{"no decile yet", false, b, false},
			{"member at decile 8 stays", true, b.with("purchase_propensity", decile(8)), true},
			{"member at decile 7 leaves", true, b.with("purchase_propensity", decile(7)), false},
			{"member without a decile stays", true, b, true},
		},
		"cart_abandoner": {
			{"carted, idle 30 minutes, never bought", false, b.with("carts_24h", 1, "abandoned_cart_sessions", 1, "days_since_last_seen", 31.0/1440, "days_since_last_purchase", -1), true},
			{"carted, idle 30 minutes, bought 10 days ago", false, b.with("carts_24h", 2, "abandoned_cart_sessions", 1, "days_since_last_seen", 0.5), true},
			{"carted, idle 20 minutes", false, b.with("carts_24h", 1, "abandoned_cart_sessions", 1, "days_since_last_seen", 20.0/1440), false},
			{"carted and bought today", false, b.with("carts_24h", 1, "abandoned_cart_sessions", 1, "days_since_last_seen", 0.1, "days_since_last_purchase", 0.1), false},
			{"no cart today", false, b.with("abandoned_cart_sessions", 1, "days_since_last_seen", 0.1), false},
			{"member who bought", true, b.with("carts_24h", 1, "abandoned_cart_sessions", 1, "days_since_last_purchase", 0.01), false},
			{"member idle a day", true, b.with("carts_24h", 1, "abandoned_cart_sessions", 1, "days_since_last_seen", 1), false},
			{"member browsing again stays", true, b.with("carts_24h", 1, "abandoned_cart_sessions", 1, "days_since_last_seen", 0.001), true},
		},
		"affinity_electronics": {
			{"electronics first", false, b.with("category_root", []string{"electronics", "apparel"}), true},
			{"electronics second", false, b, false},
			{"no categories", false, b.with("category_root", []string{}), false},
		},
		"affinity_appliances": {
			{"appliances first", false, b.with("category_root", []string{"appliances"}), true},
			{"apparel first", false, b, false},
		},
		"affinity_computers": {
			{"computers first", false, b.with("category_root", []string{"computers", "electronics"}), true},
			{"apparel first", false, b, false},
		},
		"affinity_furniture": {
			{"furniture first", false, b.with("category_root", []string{"furniture"}), true},
			{"apparel first", false, b, false},
		},
		"affinity_apparel": {
			{"apparel first", false, b, true},
			{"electronics first", false, b.with("category_root", []string{"electronics", "apparel"}), false},
			{"member whose first category changed", true, b.with("category_root", []string{"electronics", "apparel"}), false},
		},
		"brand_apple": {
			{"apple first", false, b.with("brand", []string{"apple", "samsung"}), true},
			{"apple second", false, b.with("brand", []string{"samsung", "apple"}), false},
			{"member with apple second stays", true, b.with("brand", []string{"samsung", "apple"}), true},
			{"member without apple leaves", true, b.with("brand", []string{"samsung", "xiaomi"}), false},
		},
	}
	c := defaultCatalogue(t)
	longAgo := t0.Add(-365 * day)
	for _, s := range c.Segments() {
		cases, ok := tests[s.Name]
		if !ok {
			t.Errorf("default segment %s has no test cases", s.Name)
			continue
		}
		var enters, stays, keeps, leaves bool
		for _, tt := range cases {
			var prev segment.Membership
			if tt.member {
				prev, _ = segment.NewMembership(map[string]time.Time{s.Name: longAgo})
			}
			next, _ := c.Evaluate(tt.input, prev, t0)
			if got := next.Has(s.Name); got != tt.want {
				seg, _ := c.Segment(s.Name)
				t.Errorf("%s: %s: member = %v, want %v (rule %s = %v)", s.Name, tt.desc, got, tt.want, seg.Rule, seg.Rule.Eval(tt.input))
			}
			switch {
			case !tt.member && tt.want:
				enters = true
			case !tt.member:
				stays = true
			case tt.want:
				keeps = true
			default:
				leaves = true
			}
		}
		if !enters || !stays {
			t.Errorf("%s: cases must admit and refuse a non-member", s.Name)
		}
		if s.ExitRule != nil && (!keeps || !leaves) {
			t.Errorf("%s: cases must keep and release a member (exit_rule %s)", s.Name, s.ExitRule)
		}
		delete(tests, s.Name)
	}
	for name := range tests {
		t.Errorf("test cases for %s, which is not in the default catalogue", name)
	}
}

// replay applies the bundled REES46 sample to per-user feature states, as
// the stream processor does.
func replay(t testing.TB) (states map[string]*features.State, last time.Time, cfg features.Config) {
	t.Helper()
	cfg = features.Config{}.WithDefaults()
	rc, err := data.Open(data.REES46Sample)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, err := source.NewReader(source.REES46, data.REES46Sample, rc)
	if err != nil {
		t.Fatal(err)
	}
	states = map[string]*features.State{}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ev := rec.Event
		key := ev.ProfileKey()
		st := states[key]
		if st == nil {
			st = &features.State{}
			states[key] = st
		}
		st.Apply(&ev, features.Env{Cfg: &cfg})
		if ev.TS.After(last) {
			last = ev.TS
		}
	}
	return states, last, cfg
}

// TestDefaultCatalogueOnREES46 evaluates the default catalogue for every
// user of the bundled REES46 sample (4,504 users, 3 hours of October 2019)
// and checks each segment against the profiles directly, then follows
// each user's timers for 100 days of silence.
func TestDefaultCatalogueOnREES46(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 17,434 events")
	}
	states, last, cfg := replay(t)
	c := defaultCatalogue(t)

	// Synthetic purchase propensity, ranked by a sketch as the scorer will.
	sketches, err := segment.NewSketches(segment.SketchConfig{}, segment.ScorePurchasePropensity)
	if err != nil {
		t.Fatal(err)
	}
	score := func(key string) float64 { // deterministic, spread over [0, 1)
		h := uint64(14695981039346656037)
		for i := 0; i < len(key); i++ {
			h = (h ^ uint64(key[i])) * 1099511628211
		}
		return float64(h>>11) / (1 << 53)
	}
	for _, key := range slices.Sorted(maps.Keys(states)) {
		sketches.Add(segment.ScorePurchasePropensity, score(key))
	}

	members := map[string]int{}
	roots := map[string]int{}
	buyers := 0
	for key, st := range states {
		p := st.Evaluate(last, &cfg)
		x := segment.NewProfileInput(&p, map[string]float64{segment.ScorePurchasePropensity: score(key)}, sketches)
		m, changes := c.Evaluate(x, segment.Membership{}, last)
		if len(changes) != m.Len() {
			t.Fatalf("%s: %d changes for %d entries", key, len(changes), m.Len())
		}
		for _, s := range m.Segments() {
			members[s]++
		}
		v := &p.Vector
		// Category affinity is the first category root.
		root := ""
		if a := p.Affinities[features.DimCategoryRoot]; len(a) > 0 {
			root = a[0].Name
			roots[root]++
		}
		for _, r := range []string{"electronics", "appliances", "computers", "furniture", "apparel"} {
			if m.Has("affinity_"+r) != (root == r) {
				t.Fatalf("%s: top root %q, member of affinity_%s = %v", key, root, r, m.Has("affinity_"+r))
			}
		}
		// Value tiers partition buyers.
		tiers := 0
		for _, s := range []string{"high_value", "normal_value", "low_value"} {
			if m.Has(s) {
				tiers++
			}
		}
		if buyer := v[features.PurchasesTotal] > 0; buyer && tiers != 1 || !buyer && tiers != 0 {
			t.Fatalf("%s: %v purchases, %d value tiers: %v", key, v[features.PurchasesTotal], tiers, m)
		}
		if v[features.PurchasesTotal] > 0 {
			buyers++
		}
		// Everyone was first seen within 3 hours: new, not silent.
		if !m.Has("new") || m.Has("silent") || m.Has("churned") || m.Has("at_risk") {
			t.Fatalf("%s: lifecycle %v", key, m)
		}
	}
	t.Logf("%d users, %d buyers; members %v; top roots %v", len(states), buyers, members, roots)
	if members["new"] != len(states) {
		t.Errorf("new: %d of %d users", members["new"], len(states))
	}
	for _, r := range []string{"electronics", "appliances", "computers", "furniture", "apparel"} {
		if members["affinity_"+r] == 0 {
			t.Errorf("no user has %s as first category root", r)
		}
	}
	if members["high_value"]+members["normal_value"]+members["low_value"] != buyers || buyers == 0 {
		t.Errorf("value tiers %d+%d+%d, buyers %d", members["high_value"], members["normal_value"], members["low_value"], buyers)
	}
	// The top fifth by propensity, within the sketch's error.
	if f := float64(members["high_propensity"]) / float64(len(states)); math.Abs(f-0.2) > 0.03 {
		t.Errorf("high_propensity holds %.3f of users, want 0.2 ± 0.03", f)
	}
	if members["brand_apple"] == 0 {
		t.Error("no user has apple as first brand")
	}

	// Follow every user's timers through 100 days without events. Each
	// lifecycle transition happens at its exact time (NextCheck rounds up
	// by at most 2ms).
	end := last.Add(100 * day)
	abandoners, timers, idle := 0, 0, 0
	// held lists the non-clock values of p the catalogue reads: NextCheck
	// projects them as constant.
	held := func(p *features.Profile) []float64 {
		var out []float64
		for _, s := range c.Segments() {
			for _, r := range []*segment.Rule{s.Rule, s.ExitRule} {
				if r == nil {
					continue
				}
				for _, name := range r.Refs() {
					if v, ok := p.Vector.Get(name); ok && !slices.Contains(segment.DefaultNames().Clocks, name) {
						out = append(out, v)
					}
				}
			}
		}
		return out
	}
	// Every buyer and carter, and every fifth other user (keeps the test
	// to about a second).
	for i, key := range slices.Sorted(maps.Keys(states)) {
		st := states[key]
		if st.Purchases == 0 && st.Carts == 0 && i%5 != 0 {
			continue
		}
		p := st.Evaluate(last, &cfg)
		m, _ := c.Evaluate(segment.NewProfileInput(&p, nil, nil), segment.Membership{}, last)
		lastSeen := time.UnixMilli(st.LastSeenMs).UTC()
		firstSeen := time.UnixMilli(st.FirstSeenMs).UTC()
		want := map[string]time.Time{
			"exit new":                   firstSeen.Add(7 * day),
			"enter silent":               lastSeen.Add(7 * day),
			"exit silent":                lastSeen.Add(90 * day),
			"enter churned":              lastSeen.Add(90 * day),
			"enter at_risk":              lastSeen.Add(14 * day),
			"exit at_risk":               lastSeen.Add(90 * day),
			"enter cart_abandoner":       lastSeen.Add(30 * time.Minute),
			"exit cart_abandoner":        lastSeen.Add(day),
			"exit active_high_frequency": lastSeen.Add(7 * day),
		}
		seen := map[string]bool{}
		now := last
		for n := 0; ; n++ {
			if n > 20 {
				t.Fatalf("%s: more than 20 timers", key)
			}
			at, ok := c.NextCheck(segment.NewProfileInput(&p, nil, nil), m, now)
			if !ok || at.After(end) {
				break
			}
			if !at.After(now) {
				t.Fatalf("%s: timer at %v, not after %v", key, at, now)
			}
			before := held(&p)
			now = at
			p = st.Evaluate(now, &cfg)
			var changes []segment.Change
			m, changes = c.Evaluate(segment.NewProfileInput(&p, nil, nil), m, now)
			timers++
			if len(changes) == 0 {
				// Only a held value that changed meanwhile (a window slid,
				// an activity decayed) can make a timer find nothing.
				if slices.Equal(before, held(&p)) {
					t.Fatalf("%s: timer at %v changed nothing", key, now)
				}
				idle++
			}
			for _, ch := range changes {
				k := ch.Kind.String() + " " + ch.Segment
				w, ok := want[k]
				if !ok {
					t.Fatalf("%s: unexpected %s", key, ch)
				}
				if d := ch.At.Sub(w); d < 0 || d > 2*time.Millisecond {
					t.Fatalf("%s: %s at %v, want %v", key, k, ch.At, w)
				}
				seen[k] = true
			}
		}
		for _, k := range []string{"exit new", "enter silent", "exit silent", "enter churned"} {
			if !seen[k] {
				t.Fatalf("%s: no %s within 100 days", key, k)
			}
		}
		if bought := st.Purchases > 0; seen["enter at_risk"] != bought || seen["exit at_risk"] != bought {
			t.Fatalf("%s: %d purchases, at_risk transitions %v", key, st.Purchases, seen)
		}
		if seen["enter cart_abandoner"] {
			abandoners++
			if !seen["exit cart_abandoner"] {
				t.Fatalf("%s: cart_abandoner never left", key)
			}
		}
		if got := m.Segments(); !slices.Contains(got, "churned") {
			t.Fatalf("%s: after 100 days %v", key, got)
		}
	}
	if abandoners == 0 {
		t.Error("no cart abandoner in the sample")
	}
	t.Logf("%d cart abandoners; %d timers, %d of which found nothing to change", abandoners, timers, idle)
}
