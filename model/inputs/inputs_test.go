package inputs_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/clv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
)

func snapshot() *features.Snapshot {
	return &features.Snapshot{
		Version: features.SnapshotVersion, ID: "e1", User: "u1", TS: time.Unix(1e9, 0), Type: "view",
		Features: map[string]float64{"views_total": 3, "purchases_total": 1, "last_seen": 1e9, "days_since_last_seen": 0.5},
		Tokens:   map[string][]string{"category": {"electronics.phone", "apparel"}, "brand": {"acme"}, "category_root": {"electronics"}},
	}
}

func TestDefaultNumericFeaturesExcludeRawTimestamps(t *testing.T) {
	names := inputs.DefaultNumericFeatures()
	if got, want := len(names), int(features.NumFeatures)-3; got != want {
		t.Fatalf("%d default features, want %d", got, want)
	}
	for _, n := range []string{"first_seen", "last_seen", "last_purchase_at"} {
		if slices.Contains(names, n) {
			t.Errorf("default features contain the raw timestamp %s", n)
		}
	}
	for _, n := range []string{"repeat_transactions", "recency_weeks", "age_weeks", "repeat_avg_value", "activity_1h", "days_since_last_seen"} {
		if !slices.Contains(names, n) {
			t.Errorf("default features lack %s", n)
		}
	}
	if err := inputs.DefaultArch().Validate(); err != nil {
		t.Fatal(err)
	}
	// The classical baselines are inputs of the default network too, after
	// the snapshot features.
	if got := inputs.DefaultArch().NumericFeatures; !slices.Equal(got, append(names, inputs.DerivedInputs()...)) {
		t.Errorf("default numeric inputs %v", got)
	}
}

func TestEncode(t *testing.T) {
	arch := nn.Arch{NumericFeatures: []string{"views_total", "purchases_total", "no_such_feature", "days_since_last_seen"},
		TokenFields: []string{"category", "brand", "term"}, HashBuckets: 64, Heads: []string{"a"}}
	enc, err := inputs.New(arch)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot()
	ex := enc.Encode(s)
	if want := []float64{3, 1, 0, 0.5}; !slices.Equal(ex.Numeric, want) {
		t.Errorf("numeric %v, want %v", ex.Numeric, want)
	}
	wantCat := []uint32{inputs.Bucket("electronics.phone", 64), inputs.Bucket("apparel", 64)}
	if !slices.Equal(ex.Tokens["category"], wantCat) {
		t.Errorf("category buckets %v, want %v", ex.Tokens["category"], wantCat)
	}
	if len(ex.Tokens["term"]) != 0 {
		t.Errorf("absent field term has buckets %v", ex.Tokens["term"])
	}
	if _, ok := ex.Tokens["category_root"]; ok {
		t.Error("a token field outside the architecture was encoded")
	}
	// The encoded example is a valid input of a network of that arch.
	net, err := nn.NewNetwork(arch)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	m, err := net.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict(ex); err != nil {
		t.Fatal(err)
	}
	// EncodeInto reuses memory and gives the same row.
	dst := enc.EncodeInto(nn.Example{}, &features.Snapshot{Features: map[string]float64{"views_total": 9}, Tokens: map[string][]string{"term": {"x"}}})
	dst = enc.EncodeInto(dst, s)
	if !slices.Equal(dst.Numeric, ex.Numeric) || !slices.Equal(dst.Tokens["category"], wantCat) || len(dst.Tokens["term"]) != 0 {
		t.Errorf("EncodeInto gave %+v, want %+v", dst, ex)
	}
}

func TestEncodeNonFiniteReadsZero(t *testing.T) {
	enc, err := inputs.New(nn.Arch{NumericFeatures: []string{"a", "b", "c"}, Heads: []string{"h"}})
	if err != nil {
		t.Fatal(err)
	}
	ex := enc.Encode(&features.Snapshot{Features: map[string]float64{"a": math.NaN(), "b": math.Inf(-1), "c": 2}})
	if want := []float64{0, 0, 2}; !slices.Equal(ex.Numeric, want) {
		t.Errorf("numeric %v, want %v", ex.Numeric, want)
	}
}

func TestBucketIsMurmur3InRange(t *testing.T) {
	// murmur3-32 ("hello", seed 0) = 0x248bfa47, a published test vector.
	if got := inputs.Bucket("hello", 1<<31); got != 0x248bfa47%(1<<31) {
		t.Errorf("Bucket(hello) = %#x", got)
	}
	for _, b := range []int{1, 2, 7, 1024} {
		for _, s := range []string{"", "a", "électronique", "brand-x"} {
			if got := inputs.Bucket(s, b); got >= uint32(b) {
				t.Errorf("Bucket(%q, %d) = %d out of range", s, b, got)
			}
		}
	}
}

func TestSchemaHash(t *testing.T) {
	base := inputs.DefaultArch()
	h := inputs.SchemaHash(base)
	if h != inputs.SchemaHash(nn.Arch{NumericFeatures: append(inputs.DefaultNumericFeatures(), inputs.DerivedInputs()...), Heads: base.Heads}) {
		t.Error("schema hash depends on whether defaults were applied")
	}
	same := base
	same.LearningRate, same.Seed, same.BatchSize = 0.5, 99, 7
	if inputs.SchemaHash(same) != h {
		t.Error("training settings changed the schema hash")
	}
	for name, mut := range map[string]func(a *nn.Arch){
		"numeric": func(a *nn.Arch) { a.NumericFeatures = a.NumericFeatures[1:] },
		"order": func(a *nn.Arch) {
			a.NumericFeatures[0], a.NumericFeatures[1] = a.NumericFeatures[1], a.NumericFeatures[0]
		},
		"tokens":   func(a *nn.Arch) { a.TokenFields = []string{"brand"} },
		"buckets":  func(a *nn.Arch) { a.HashBuckets = 2048 },
		"hidden":   func(a *nn.Arch) { a.Hidden = []int{8} },
		"heads":    func(a *nn.Arch) { a.Heads = []string{"x", "y"} },
		"embeddim": func(a *nn.Arch) { a.EmbedDim = 4 },
	} {
		a := inputs.DefaultArch()
		mut(&a)
		if inputs.SchemaHash(a) == h {
			t.Errorf("changing %s kept the schema hash", name)
		}
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("views_total", 1.5, "category", "x.y", 16)
	f.Add("", math.NaN(), "term", "", 1)
	f.Fuzz(func(t *testing.T, name string, v float64, field, tok string, buckets int) {
		if buckets < 1 || buckets > 1<<16 {
			buckets = 16
		}
		enc, err := inputs.New(nn.Arch{NumericFeatures: []string{"views_total", "x"}, HashBuckets: buckets, Heads: []string{"h"}})
		if err != nil {
			t.Fatal(err)
		}
		ex := enc.Encode(&features.Snapshot{Features: map[string]float64{name: v}, Tokens: map[string][]string{field: {tok, tok}}})
		for _, x := range ex.Numeric {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("non-finite input %v", x)
			}
		}
		for f, ids := range ex.Tokens {
			for _, id := range ids {
				if id >= uint32(buckets) {
					t.Fatalf("field %s bucket %d >= %d", f, id, buckets)
				}
			}
		}
	})
}

func BenchmarkScoreSnapshot(b *testing.B) {
	arch := inputs.DefaultArch()
	enc, err := inputs.New(arch)
	if err != nil {
		b.Fatal(err)
	}
	net, err := nn.NewNetwork(arch)
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	m, err := net.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	s := snapshot()
	for _, n := range arch.NumericFeatures {
		if _, ok := s.Features[n]; !ok {
			s.Features[n] = float64(len(n))
		}
	}
	s.Tokens["term"] = []string{"phone", "case"}
	out := make([]float64, len(arch.Heads))
	var ex nn.Example
	b.ReportAllocs()
	for b.Loop() {
		ex = enc.EncodeInto(ex, s)
		if _, err := m.PredictInto(out, ex); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDerivedInputs(t *testing.T) {
	fit := &inputs.Fit{BGNBD: clv.BGNBD{R: 0.25, Alpha: 4.5, A: 0.8, B: 2.4}, GammaGamma: &clv.GammaGamma{P: 6, Q: 3.5, V: 15}}
	arch := nn.Arch{NumericFeatures: append([]string{"purchases_total"}, inputs.DerivedInputs()...), Heads: []string{"h"}}
	base, err := inputs.New(arch)
	if err != nil {
		t.Fatal(err)
	}
	enc := base.WithFit(fit)
	customer := map[string]float64{"purchases_total": 3, "purchase_days": 3, "repeat_transactions": 2, "recency_weeks": 10,
		"age_weeks": 20, "repeat_avg_value": 40}
	c, ok := inputs.CustomerOf(customer)
	if !ok || c != (clv.Customer{Frequency: 2, Recency: 10, T: 20, MonetaryMean: 40}) {
		t.Fatalf("CustomerOf = %+v, %v", c, ok)
	}
	ey := fit.BGNBD.ExpectedPurchases(inputs.DerivedHorizonWeeks, c)
	one := clv.Customer{T: 5} // a one-time buyer: Gamma-Gamma's spend is the population mean
	ey1 := fit.BGNBD.ExpectedPurchases(inputs.DerivedHorizonWeeks, one)
	for _, tc := range []struct {
		name  string
		enc   *inputs.Encoder
		feats map[string]float64
		want  []float64
	}{
		{"customer with a fit", enc, customer, []float64{3, 1, fit.BGNBD.PAlive(c), ey, fit.GammaGamma.ExpectedSpend(c) * ey}},
		{"no fit yet", base, customer, []float64{3, 0, 0, 0, 0}},
		{"invalid fit reads as none", base.WithFit(&inputs.Fit{}), customer, []float64{3, 0, 0, 0, 0}},
		{"never bought", enc, map[string]float64{"purchases_total": 0}, []float64{0, 0, 0, 0, 0}},
		{"NaN summary", enc, map[string]float64{"purchase_days": 1, "age_weeks": math.NaN()}, []float64{0, 0, 0, 0, 0}},
		{"one-time buyer", enc, map[string]float64{"purchase_days": 1, "age_weeks": 5, "recency_weeks": 3},
			[]float64{0, 1, 1, ey1, fit.GammaGamma.ExpectedSpend(one) * ey1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.enc.Encode(&features.Snapshot{Features: tc.feats}).Numeric
			if !slices.Equal(got, tc.want) {
				t.Errorf("numeric %v, want %v", got, tc.want)
			}
		})
	}
	if base.Fit() != nil || enc.Fit() == nil || *enc.Fit().GammaGamma != *fit.GammaGamma {
		t.Error("Fit does not return the bound fit")
	}
	if !enc.SameInputs(base.WithFit(fit)) || enc.SameInputs(base) || enc.SchemaHash() != base.SchemaHash() {
		t.Error("SameInputs does not compare the fit")
	}
	plain, _ := inputs.New(nn.Arch{NumericFeatures: []string{"purchases_total"}, Heads: []string{"h"}})
	if !plain.SameInputs(plain.WithFit(fit)) {
		t.Error("without derived inputs the fit changed SameInputs")
	}
	for _, n := range inputs.DerivedInputs() {
		if _, ok := features.Lookup(n); ok || !inputs.IsDerived(n) {
			t.Errorf("derived input %s collides with a snapshot feature or is not derived", n)
		}
	}
	if inputs.IsDerived("purchases_total") {
		t.Error("a snapshot feature reads as derived")
	}
}

// DerivedWithout(SummaryOf(s), k) is, slot for slot and bit for bit, what
// Encode writes into the derived inputs of s with its k-th summary feature
// removed, for every k, with and without a fit, for customers, one-time
// buyers, non-customers and broken summaries.
func TestDerivedWithoutIsEncodeWithoutFeature(t *testing.T) {
	fit := &inputs.Fit{BGNBD: clv.BGNBD{R: 0.25, Alpha: 4.5, A: 0.8, B: 2.4}, GammaGamma: &clv.GammaGamma{P: 6, Q: 3.5, V: 15}}
	arch := inputs.DefaultArch()
	base, err := inputs.New(arch)
	if err != nil {
		t.Fatal(err)
	}
	slots := base.DerivedSlots()
	if len(slots) != len(inputs.DerivedInputs()) {
		t.Fatalf("derived slots %v", slots)
	}
	for j, i := range slots {
		if arch.NumericFeatures[i] != inputs.DerivedInputs()[j] {
			t.Fatalf("slot %d is %s", i, arch.NumericFeatures[i])
		}
	}
	summaries := []map[string]float64{
		{"purchase_days": 3, "repeat_transactions": 2, "recency_weeks": 10, "age_weeks": 20, "repeat_avg_value": 40, "views_total": 9},
		{"purchase_days": 1, "age_weeks": 5},
		{"purchase_days": 2, "repeat_transactions": 1, "recency_weeks": 30, "age_weeks": 4, "repeat_avg_value": 1e301},
		{"views_total": 4},
		{"purchase_days": 1, "age_weeks": math.NaN()},
		{"purchase_days": 4, "repeat_transactions": 3, "recency_weeks": math.Inf(1), "age_weeks": 7, "repeat_avg_value": 12},
	}
	names := inputs.SummaryFeatures()
	checked := 0
	for _, enc := range []*inputs.Encoder{base, base.WithFit(fit), base.WithFit(&inputs.Fit{BGNBD: fit.BGNBD})} {
		for si, f := range summaries {
			s := &features.Snapshot{Features: f}
			sum := inputs.SummaryOf(s)
			for k := -1; k < len(names); k++ {
				without := map[string]float64{}
				for n, v := range f {
					if k < 0 || n != names[k] {
						without[n] = v
					}
				}
				ex := enc.Encode(&features.Snapshot{Features: without})
				got := enc.DerivedWithout(nil, sum, k)
				if len(got) != len(slots) {
					t.Fatalf("%d values for %d slots", len(got), len(slots))
				}
				for j, i := range slots {
					if math.Float64bits(got[j]) != math.Float64bits(ex.Numeric[i]) {
						t.Fatalf("summary %d without %d: slot %s = %v, Encode says %v", si, k, arch.NumericFeatures[i], got[j], ex.Numeric[i])
					}
				}
				if got[0] == 1 {
					checked++
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no case with a defined customer")
	}
	plain, _ := inputs.New(nn.Arch{NumericFeatures: []string{"purchase_days"}, Heads: []string{"h"}})
	if len(plain.DerivedSlots()) != 0 || len(plain.DerivedWithout(nil, inputs.Summary{1, 2, 3, 4, 5}, 0)) != 0 {
		t.Error("an architecture without derived inputs has derived slots")
	}
}
