package featurestest

import (
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// Money is summed in integer micros: 0.1 + 0.2 is 0.3, not the float sum
// 0.30000000000000004, in revenue_30d as in revenue_total.
func TestRecomputeRevenueIsExact(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	var evs []stream.Event
	for i, p := range []float64{0.1, 0.2} {
		price := p
		evs = append(evs, stream.Event{EventID: string(rune('a' + i)), Type: stream.TypePurchase, UserID: "u",
			TS: t0.Add(time.Duration(i) * time.Minute), ItemID: "i", Price: &price, PriceMicros: int64(p*1e6 + 0.5)})
	}
	at := t0.Add(time.Hour)
	cfg := features.Config{}.WithDefaults()
	want := Recompute(evs, at, cfg)["u"]
	if v := want.Vector; v[features.Revenue30d] != 0.3 || v[features.RevenueTotal] != 0.3 {
		t.Fatalf("revenue_30d %v, revenue_total %v, want exactly 0.3", v[features.Revenue30d], v[features.RevenueTotal])
	}
	// The streaming state agrees exactly.
	var st features.State
	for i := range evs {
		st.Apply(&evs[i], features.Env{Cfg: &cfg})
	}
	if d := Diff(st.Evaluate(at, &cfg), want, 1e-9); len(d) > 0 {
		t.Fatalf("streamed state differs: %v", d)
	}
}

func aff(pairs ...any) []features.Affinity {
	var out []features.Affinity
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, features.Affinity{Name: pairs[i].(string), Score: pairs[i+1].(float64)})
	}
	return out
}

func TestDiff(t *testing.T) {
	const tol = 1e-9
	tenth := 0.1 // a variable: constant arithmetic would make 0.1 + 0.2 exactly 0.3
	base := func() features.Profile {
		var p features.Profile
		p.Vector[features.Revenue30d] = 0.3
		p.Vector[features.Activity1h] = 1.5
		p.Affinities = map[string][]features.Affinity{features.DimBrand: aff("a", 3.0, "b", 2.0, "c", 1.0)}
		return p
	}
	full := aff("a", 5.0, "b", 4.0, "c", 3.0, "d", 2.0, "e", 1.0)
	if features.DefaultConfig.TopK != len(full) {
		t.Fatalf("the cases assume TopK %d", len(full))
	}
	cases := []struct {
		name string
		edit func(got, want *features.Profile)
		diff string // substring of the report; "" when equal
	}{
		{"equal", func(g, w *features.Profile) {}, ""},
		{"revenue_30d is exact", func(g, w *features.Profile) { g.Vector[features.Revenue30d] = tenth + 0.2 }, "revenue_30d"},
		{"decayed within tolerance", func(g, w *features.Profile) { g.Vector[features.Activity1h] *= 1 + 1e-12 }, ""},
		{"decayed beyond tolerance", func(g, w *features.Profile) { g.Vector[features.Activity1h] *= 1 + 1e-6 }, "activity_1h"},
		{"wrong name", func(g, w *features.Profile) {
			g.Affinities[features.DimBrand] = aff("a", 3.0, "x", 2.0, "c", 1.0)
		}, "brand affinity 1"},
		{"names of different scores swapped", func(g, w *features.Profile) {
			g.Affinities[features.DimBrand] = aff("b", 3.0, "a", 2.0, "c", 1.0)
		}, "brand affinity 0"},
		{"length", func(g, w *features.Profile) { g.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0) }, "2 entries"},
		{"repeated name", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0, "c", 2.0)
			g.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0, "b", 2.0)
		}, "repeats"},
		{"exact tie in name order", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0, "c", 2.0)
			g.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0, "c", 2.0)
		}, ""},
		{"exact tie out of name order", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0, "c", 2.0)
			g.Affinities[features.DimBrand] = aff("a", 3.0, "c", 2.0, "b", 2.0)
		}, "brand affinity 1"},
		{"exact tie out of name order at the cut", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = aff("a", 5.0, "b", 4.0, "c", 3.0, "d", 1.0, "e", 1.0)
			g.Affinities[features.DimBrand] = aff("a", 5.0, "b", 4.0, "c", 3.0, "e", 1.0, "f", 1.0)
		}, "brand affinity 3"},
		{"near tie permuted", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0+1e-13, "c", 2.0)
			g.Affinities[features.DimBrand] = aff("a", 3.0, "c", 2.0+1e-13, "b", 2.0)
		}, ""},
		{"tie of a short list names an entry the data lacks", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0, "c", 2.0)
			g.Affinities[features.DimBrand] = aff("a", 3.0, "b", 2.0, "x", 2.0)
		}, "brand affinity 2"},
		{"full list cut inside a tie", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = full
			gl := append([]features.Affinity(nil), full...)
			gl[4].Name = "f" // ties with e; the recomputation cut it off
			g.Affinities[features.DimBrand] = gl
		}, ""},
		{"full list names an entry of another rank", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = full
			gl := append([]features.Affinity(nil), full...)
			gl[4].Name = "a"
			g.Affinities[features.DimBrand] = gl
		}, "brand affinity"},
		{"full list wrong name before the last run", func(g, w *features.Profile) {
			w.Affinities[features.DimBrand] = full
			gl := append([]features.Affinity(nil), full...)
			gl[3].Name = "f"
			g.Affinities[features.DimBrand] = gl
		}, "brand affinity 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := base(), base()
			c.edit(&got, &want)
			d := Diff(got, want, tol)
			switch {
			case c.diff == "" && len(d) > 0:
				t.Fatalf("Diff reports %v, want none", d)
			case c.diff != "" && !strings.Contains(strings.Join(d, "; "), c.diff):
				t.Fatalf("Diff reports %v, want a difference about %q", d, c.diff)
			}
		})
	}
}
