package segment_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/streamprofile/streamprofile/sink/segment"
)

func newSketch(t testing.TB, cfg segment.SketchConfig) *segment.Sketch {
	t.Helper()
	s, err := segment.NewSketch(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSketchExactBelowSize(t *testing.T) {
	s := newSketch(t, segment.SketchConfig{MinCount: 100})
	rng := rand.New(rand.NewPCG(1, 1))
	for _, v := range rng.Perm(1000) {
		s.Add(float64(v + 1)) // 1 … 1000
	}
	b, ok := s.Boundaries()
	if !ok || b != [9]float64{100, 200, 300, 400, 500, 600, 700, 800, 900} {
		t.Fatalf("Boundaries = %v, %v", b, ok)
	}
	if q, _ := s.Quantile(0.5); q != 500 {
		t.Fatalf("median %v", q)
	}
	if q, _ := s.Quantile(0); q != 1 {
		t.Fatalf("min %v", q)
	}
	if q, _ := s.Quantile(1); q != 1000 {
		t.Fatalf("max %v", q)
	}
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if _, ok := s.Quantile(q); ok {
			t.Fatalf("Quantile(%v) answered", q)
		}
	}
	count := map[int]int{}
	for v := 1; v <= 1000; v++ {
		d, ok := s.Decile(float64(v))
		if !ok {
			t.Fatal("Decile not ready")
		}
		count[d]++
		if want := (v-1)/100 + 1; d != want {
			t.Fatalf("Decile(%d) = %d, want %d", v, d, want)
		}
	}
	for d := 1; d <= 10; d++ {
		if count[d] != 100 {
			t.Fatalf("decile %d holds %d values", d, count[d])
		}
	}
	if d, _ := s.Decile(-5); d != 1 {
		t.Fatalf("below the minimum: %d", d)
	}
	if d, _ := s.Decile(1e9); d != 10 {
		t.Fatalf("above the maximum: %d", d)
	}
}

// TestSketchAccuracy streams 200,000 values of known distributions through
// a 4096-value sketch: every decile boundary's true rank is within the
// documented ±0.03 of its nominal rank.
func TestSketchAccuracy(t *testing.T) {
	dists := []struct {
		name   string
		sample func(*rand.Rand) float64
		cdf    func(float64) float64
	}{
		{"uniform", func(r *rand.Rand) float64 { return r.Float64() }, func(x float64) float64 { return math.Min(1, math.Max(0, x)) }},
		{"exponential", func(r *rand.Rand) float64 { return r.ExpFloat64() }, func(x float64) float64 { return 1 - math.Exp(-x) }},
		{"logistic scores", func(r *rand.Rand) float64 { return 1 / (1 + math.Exp(-r.NormFloat64()*2)) }, func(p float64) float64 {
			z := math.Log(p/(1-p)) / 2
			return 0.5 * math.Erfc(-z/math.Sqrt2)
		}},
	}
	for _, d := range dists {
		for seed := uint64(1); seed <= 3; seed++ {
			s := newSketch(t, segment.SketchConfig{Seed: seed})
			rng := rand.New(rand.NewPCG(seed, 99))
			for i := 0; i < 200_000; i++ {
				s.Add(d.sample(rng))
			}
			b, _ := s.Boundaries()
			for i, c := range b {
				if rank := d.cdf(c); math.Abs(rank-float64(i+1)/10) > 0.03 {
					t.Errorf("%s seed %d: boundary %d = %v has rank %.4f, want %.1f ± 0.03", d.name, seed, i+1, c, rank, float64(i+1)/10)
				}
			}
			if s.Count() != 200_000 {
				t.Fatalf("Count = %d", s.Count())
			}
		}
	}
}

// TestSketchTies: however many values are tied, decile ≥ d holds at most
// (11−d)/10 of the values (on an exact sketch).
func TestSketchTies(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for trial := 0; trial < 50; trial++ {
		s := newSketch(t, segment.SketchConfig{MinCount: 1})
		n := 10 + rng.IntN(3000)
		levels := 1 + rng.IntN(8)
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = float64(rng.IntN(levels))
			s.Add(vals[i])
		}
		atLeast := make([]int, 12)
		for _, v := range vals {
			d, _ := s.Decile(v)
			if d < 1 || d > 10 {
				t.Fatalf("decile %d", d)
			}
			for k := 1; k <= d; k++ {
				atLeast[k]++
			}
		}
		for k := 1; k <= 10; k++ {
			if float64(atLeast[k]) > float64(n)*float64(11-k)/10+1e-9 {
				t.Fatalf("%d values, %d levels: %d have decile ≥ %d, more than %.0f%%", n, levels, atLeast[k], k, float64(11-k)*10)
			}
		}
	}
	// All equal: everyone is in decile 1.
	s := newSketch(t, segment.SketchConfig{MinCount: 1})
	for i := 0; i < 100; i++ {
		s.Add(0.5)
	}
	if d, _ := s.Decile(0.5); d != 1 {
		t.Fatalf("all tied: decile %d", d)
	}
}

func TestSketchMinCountAndNaN(t *testing.T) {
	s := newSketch(t, segment.SketchConfig{MinCount: 10})
	if _, ok := s.Boundaries(); ok {
		t.Fatal("Boundaries of an empty sketch")
	}
	if _, ok := s.Quantile(0.5); ok {
		t.Fatal("Quantile of an empty sketch")
	}
	for i := 0; i < 9; i++ {
		s.Add(float64(i))
		s.Add(math.NaN())
	}
	if s.Count() != 9 {
		t.Fatalf("Count = %d: NaN counted", s.Count())
	}
	if _, ok := s.Decile(3); ok {
		t.Fatal("Decile answered below MinCount")
	}
	s.Add(9)
	if d, ok := s.Decile(9); !ok || d != 10 {
		t.Fatalf("Decile(9) = %d, %v", d, ok)
	}
	if _, ok := s.Decile(math.NaN()); ok {
		t.Fatal("Decile(NaN) answered")
	}
}

func TestSketchDeterministic(t *testing.T) {
	a := newSketch(t, segment.SketchConfig{Size: 100, Seed: 7})
	b := newSketch(t, segment.SketchConfig{Size: 100, Seed: 7})
	c := newSketch(t, segment.SketchConfig{Size: 100, Seed: 8})
	rng := rand.New(rand.NewPCG(3, 3))
	for i := 0; i < 10_000; i++ {
		v := rng.Float64()
		a.Add(v)
		b.Add(v)
		c.Add(v)
	}
	ba, _ := a.Boundaries()
	bb, _ := b.Boundaries()
	bc, _ := c.Boundaries()
	if ba != bb {
		t.Fatalf("same seed, different boundaries: %v %v", ba, bb)
	}
	if ba == bc {
		t.Fatal("different seeds, same sample")
	}
}

// TestSketchRefresh: boundaries are recomputed after RefreshEvery additions
// (or count/64 when fewer), not on every query.
func TestSketchRefresh(t *testing.T) {
	s := newSketch(t, segment.SketchConfig{Size: 10_000, RefreshEvery: 100, MinCount: 1})
	for i := 0; i < 6400; i++ {
		s.Add(0)
	}
	if b, _ := s.Boundaries(); b[8] != 0 {
		t.Fatalf("boundaries %v", b)
	}
	for i := 0; i < 99; i++ {
		s.Add(1)
	}
	if b, _ := s.Boundaries(); b[8] != 0 {
		t.Fatalf("refreshed after 99 additions (< RefreshEvery and < count/64): %v", b)
	}
	for i := 0; i < 1000; i++ {
		s.Add(1)
	}
	if b, _ := s.Boundaries(); b[8] != 1 {
		t.Fatalf("not refreshed after %d additions: %v", 1099, b)
	}
	// Early on, count/64 is the bound.
	e := newSketch(t, segment.SketchConfig{RefreshEvery: 1000, MinCount: 1})
	for i := 0; i < 640; i++ {
		e.Add(0)
	}
	e.Boundaries()
	for i := 0; i < 80; i++ {
		e.Add(1)
	}
	if b, _ := e.Boundaries(); b[8] != 1 {
		t.Fatalf("not refreshed after 80 additions to 640 (> count/64): %v", b)
	}
}

func TestSketchConcurrent(t *testing.T) {
	ss, err := segment.NewSketches(segment.SketchConfig{Size: 256, MinCount: 10}, segment.ScorePurchasePropensity, segment.ScoreChurnRisk)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for i := 0; i < 2000; i++ {
				ss.Add(segment.ScorePurchasePropensity, rng.Float64())
				if d, ok := ss.Decile(segment.ScorePurchasePropensity, rng.Float64()); ok && (d < 1 || d > 10) {
					t.Errorf("decile %d", d)
				}
			}
		}(g)
	}
	wg.Wait()
	if s, _ := ss.Sketch(segment.ScorePurchasePropensity); s.Count() != 8000 {
		t.Fatalf("Count = %d", s.Count())
	}
}

func TestSketches(t *testing.T) {
	ss, err := segment.NewSketches(segment.SketchConfig{MinCount: 1}, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if ss.Add("c", 1) {
		t.Fatal("Add of an untracked score")
	}
	if _, ok := ss.Decile("c", 1); ok {
		t.Fatal("Decile of an untracked score")
	}
	if _, ok := ss.Sketch("c"); ok {
		t.Fatal("Sketch of an untracked score")
	}
	for i := 1; i <= 10; i++ {
		ss.Add("a", float64(i))
		ss.Add("b", float64(-i))
	}
	if d, _ := ss.Decile("a", 10); d != 10 {
		t.Fatalf("a: decile %d", d)
	}
	if d, _ := ss.Decile("b", 10); d != 10 {
		t.Fatalf("b: decile %d", d)
	}
	if d, _ := ss.Decile("b", -10); d != 1 {
		t.Fatalf("b: decile %d", d)
	}
	if _, err := segment.NewSketches(segment.SketchConfig{}, "a", "a"); !errors.Is(err, segment.ErrConfig) {
		t.Fatalf("duplicate score: %v", err)
	}
}

func TestSketchConfigValidate(t *testing.T) {
	if err := (segment.SketchConfig{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for _, c := range []segment.SketchConfig{
		{Size: 9}, {Size: segment.MaxSketchSize + 1}, {Size: -1}, {MinCount: -1}, {RefreshEvery: -5},
	} {
		if err := c.Validate(); !errors.Is(err, segment.ErrConfig) {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
		if _, err := segment.NewSketch(c); !errors.Is(err, segment.ErrConfig) {
			t.Errorf("NewSketch(%+v) = %v", c, err)
		}
	}
}

// TestSketchUniformOverTime: the reservoir samples the whole stream
// uniformly, old and new values alike. With the values 0 … n−1 added in
// order, a sample biased to recent (or early) values would shift every
// boundary.
func TestSketchUniformOverTime(t *testing.T) {
	const n = 300_000
	s := newSketch(t, segment.SketchConfig{})
	for i := 0; i < n; i++ {
		s.Add(float64(i))
	}
	b, _ := s.Boundaries()
	for i, c := range b {
		if rank := c / n; math.Abs(rank-float64(i+1)/10) > 0.03 {
			t.Errorf("boundary %d at rank %.4f, want %.1f ± 0.03", i+1, rank, float64(i+1)/10)
		}
	}
}
