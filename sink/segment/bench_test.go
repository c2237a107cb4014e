package segment_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/sink/segment"
)

// benchProfile is a typical profile: a buyer with affinities in every
// dimension and all scores.
func benchProfile() (*features.Profile, map[string]float64) {
	p := &features.Profile{At: t0, Affinities: map[string][]features.Affinity{
		features.DimCategory:     {{Name: "electronics.smartphone", Score: 9}, {Name: "appliances.kitchen.mixer", Score: 4}},
		features.DimCategoryRoot: {{Name: "electronics", Score: 9}, {Name: "appliances", Score: 4}, {Name: "apparel", Score: 1}},
		features.DimBrand:        {{Name: "apple", Score: 7}, {Name: "samsung", Score: 5}},
		features.DimTerm:         {{Name: "phone", Score: 2}},
	}}
	v := &p.Vector
	v[features.ViewsTotal], v[features.CartsTotal], v[features.PurchasesTotal] = 40, 4, 2
	v[features.RevenueTotal], v[features.RFMMonetary], v[features.RFMFrequency] = 320, 3, 3
	v[features.SessionsTotal], v[features.Activity7d] = 4, 12
	v[features.DaysSinceLastSeen], v[features.TenureDays], v[features.DaysSinceLastPurchase] = 0.2, 12, 3
	v[features.Carts24h], v[features.AbandonedCartSessions], v[features.CartAbandonRate] = 1, 1, 0.5
	scores := map[string]float64{}
	for i, s := range segment.ScoreNames() {
		scores[s] = 0.1 * float64(i+1)
	}
	return p, scores
}

func benchSketches(b *testing.B) *segment.Sketches {
	ss, err := segment.NewSketches(segment.SketchConfig{}, segment.ScoreNames()...)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 20_000; i++ {
		for _, s := range segment.ScoreNames() {
			ss.Add(s, rng.Float64())
		}
	}
	return ss
}

// BenchmarkEvaluate evaluates the default catalogue (16 segments) for one
// user. steady: the membership does not change (the common case, no
// allocation); changing: two segments change on every call (reasons are
// built); profile-input: a ProfileInput built per user, as the scorer does.
func BenchmarkEvaluate(b *testing.B) {
	c := defaultCatalogue(b)
	p, scores := benchProfile()
	ss := benchSketches(b)
	x := segment.NewProfileInput(p, scores, ss)
	m, _ := c.Evaluate(x, segment.Membership{}, t0)
	b.Run("steady", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Evaluate(x, m, t0)
		}
	})
	b.Run("profile-input", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Evaluate(segment.NewProfileInput(p, scores, ss), m, t0)
		}
	})
	q, _ := benchProfile()
	q.Vector[features.DaysSinceLastSeen] = 8 // silent, not affinity_electronics
	q.Affinities[features.DimCategoryRoot] = q.Affinities[features.DimCategoryRoot][1:]
	y := segment.NewProfileInput(q, scores, ss)
	b.Run("changing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, _ := c.Evaluate(y, m, t0)
			c.Evaluate(x, n, t0)
		}
	})
}

func BenchmarkNextCheck(b *testing.B) {
	c := defaultCatalogue(b)
	p, scores := benchProfile()
	x := segment.NewProfileInput(p, scores, nil)
	m, _ := c.Evaluate(x, segment.Membership{}, t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.NextCheck(x, m, t0); !ok {
			b.Fatal("no timer")
		}
	}
}

func BenchmarkParseDefault(b *testing.B) {
	src := segment.DefaultYAML()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := segment.Parse("default.yaml", src, segment.Config{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMembershipCodec(b *testing.B) {
	m, _ := segment.NewMembership(map[string]time.Time{"high_value": t0, "new": t0, "affinity_electronics": t0, "brand_apple": t0})
	buf, _ := m.MarshalBinary()
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		out := make([]byte, 0, 128)
		for b.Loop() {
			out, _ = m.AppendBinary(out[:0])
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		var got segment.Membership
		for b.Loop() {
			if err := got.UnmarshalBinary(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSketch(b *testing.B) {
	s, _ := segment.NewSketch(segment.SketchConfig{})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100_000; i++ {
		s.Add(rng.Float64())
	}
	b.Run("add", func(b *testing.B) {
		for b.Loop() {
			s.Add(rng.Float64())
		}
	})
	b.Run("add+decile", func(b *testing.B) {
		for b.Loop() {
			v := rng.Float64()
			s.Add(v)
			s.Decile(v)
		}
	})
}
