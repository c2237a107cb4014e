package segment_test

import (
	"slices"
	"testing"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/sink/segment"
)

func TestProfileInput(t *testing.T) {
	p := &features.Profile{At: t0, Affinities: map[string][]features.Affinity{
		features.DimBrand: {{Name: "apple", Score: 3}, {Name: "samsung", Score: 1}},
	}}
	p.Vector[features.ViewsTotal] = 7
	p.Vector[features.DaysSinceLastSeen] = 1.5
	ss, err := segment.NewSketches(segment.SketchConfig{MinCount: 1}, segment.ScorePurchasePropensity, segment.ScoreChurnRisk)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		ss.Add(segment.ScorePurchasePropensity, float64(i)/100)
	}
	x := segment.NewProfileInput(p, map[string]float64{segment.ScorePurchasePropensity: 0.95, segment.ScoreChurnRisk: nanValue()}, ss)

	if v, ok := x.Value("views_total"); !ok || v != 7 {
		t.Errorf("views_total = %v, %v", v, ok)
	}
	if v, ok := x.Value("revenue_total"); !ok || v != 0 {
		t.Errorf("a zero feature is present: %v, %v", v, ok)
	}
	if v, ok := x.Value(segment.ScorePurchasePropensity); !ok || v != 0.95 {
		t.Errorf("score = %v, %v", v, ok)
	}
	if _, ok := x.Value(segment.ScoreChurnRisk); ok {
		t.Error("a NaN score is present")
	}
	if _, ok := x.Value(segment.ScoreCLV90d); ok {
		t.Error("an absent score is present")
	}
	if got := x.Top(features.DimBrand); !slices.Equal(got, []string{"apple", "samsung"}) {
		t.Errorf("Top(brand) = %q", got)
	}
	if got := x.Top(features.DimTerm); len(got) != 0 {
		t.Errorf("Top(term) = %q", got)
	}
	if d, ok := x.Decile(segment.ScorePurchasePropensity); !ok || d != 10 {
		t.Errorf("Decile = %d, %v", d, ok)
	}
	if _, ok := x.Decile(segment.ScoreCLV90d); ok {
		t.Error("decile of an absent score")
	}

	// As a rule input.
	r := mustRule(t, `views_total >= 7 and top_brand == "apple" and decile(purchase_propensity) == 10 and days_since_last_seen < 37h`)
	if got := r.Eval(x); got != segment.True {
		t.Errorf("%s = %v", r, got)
	}

	// Without profile or deciles, everything is missing.
	empty := segment.NewProfileInput(nil, nil, nil)
	if _, ok := empty.Value("views_total"); ok {
		t.Error("nil profile has views_total")
	}
	if empty.Top(features.DimBrand) != nil {
		t.Error("nil profile has affinities")
	}
	if _, ok := segment.NewProfileInput(p, map[string]float64{segment.ScorePurchasePropensity: 1}, nil).Decile(segment.ScorePurchasePropensity); ok {
		t.Error("decile without a provider")
	}
}
