package metrics_test

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/streamprofile/streamprofile/model/metrics"
)

const (
	F = false
	T = true
)

func near(got, want, tol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= tol
}

func TestAUC(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name   string
		scores []float64
		labels []bool
		want   float64
	}{
		// 4 pairs (pos, neg): (0.35,0.1) ✓ (0.35,0.4) ✗ (0.8,0.1) ✓ (0.8,0.4) ✓ → 3/4.
		{"textbook", []float64{0.1, 0.4, 0.35, 0.8}, []bool{F, F, T, T}, 0.75},
		{"perfect", []float64{1, 2, 3, 4}, []bool{F, F, T, T}, 1},
		{"reversed", []float64{1, 2, 3, 4}, []bool{T, T, F, F}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, []bool{F, T, F, T}, 0.5},
		// pos {2, 3}, neg {1, 2}: (2,1) 1 + (2,2) ½ + (3,1) 1 + (3,2) 1 = 3.5 of 4.
		{"one tie across classes", []float64{1, 2, 2, 3}, []bool{F, F, T, T}, 0.875},
		// pos {5, 5, 1}, neg {5, 0}: (5,5) ½ ×2, (5,0) 1 ×2, (1,5) 0, (1,0) 1 = 4 of 6.
		{"ties within and across", []float64{5, 5, 1, 5, 0}, []bool{T, T, T, F, F}, 4.0 / 6},
		{"infinite scores", []float64{-inf, inf, 0}, []bool{F, T, F}, 1},
		{"only positives", []float64{1, 2}, []bool{T, T}, nan},
		{"only negatives", []float64{1, 2}, []bool{F, F}, nan},
		{"empty", nil, nil, nan},
		{"length mismatch", []float64{1, 2}, []bool{T}, nan},
		{"NaN score", []float64{1, nan, 3}, []bool{T, F, F}, nan},
	} {
		if got := metrics.AUC(tc.scores, tc.labels); !near(got, tc.want, 1e-15) {
			t.Errorf("%s: AUC = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// bruteAUC counts concordant pairs directly: the definition of the AUC.
func bruteAUC(scores []float64, labels []bool) float64 {
	var num, den float64
	for i := range scores {
		for j := range scores {
			if labels[i] && !labels[j] {
				den++
				switch {
				case scores[i] > scores[j]:
					num++
				case scores[i] == scores[j]:
					num += 0.5
				}
			}
		}
	}
	return num / den
}

func TestAUCMatchesPairCounting(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 200 {
		n := 2 + rng.IntN(60)
		scores, labels := make([]float64, n), make([]bool, n)
		for i := range scores {
			scores[i] = float64(rng.IntN(8)) // many ties
			labels[i] = rng.IntN(3) == 0
		}
		labels[0], labels[1] = true, false
		got, want := metrics.AUC(scores, labels), bruteAUC(scores, labels)
		if !near(got, want, 1e-12) {
			t.Fatalf("AUC(%v, %v) = %v, pair count %v", scores, labels, got, want)
		}
		neg := make([]float64, n)
		for i, s := range scores {
			neg[i] = -s
		}
		if s := got + metrics.AUC(neg, labels); !near(s, 1, 1e-12) {
			t.Fatalf("AUC(s) + AUC(−s) = %v, want 1", s)
		}
	}
}

func TestLogLoss(t *testing.T) {
	nan := math.NaN()
	eps := metrics.LogLossEpsilon
	for _, tc := range []struct {
		name   string
		probs  []float64
		labels []bool
		want   float64
	}{
		{"coin flip", []float64{0.5}, []bool{T}, math.Ln2},
		{"two", []float64{0.8, 0.3}, []bool{T, F}, -(math.Log(0.8) + math.Log(0.7)) / 2},
		{"certain and right", []float64{1, 0}, []bool{T, F}, -math.Log(1 - eps)},
		{"certain and wrong is clipped", []float64{1}, []bool{F}, -math.Log1p(-(1 - eps))},
		{"empty", nil, nil, nan},
		{"length mismatch", []float64{0.5}, nil, nan},
		{"above 1", []float64{1.2}, []bool{T}, nan},
		{"negative", []float64{-0.1}, []bool{F}, nan},
		{"NaN", []float64{nan}, []bool{F}, nan},
	} {
		if got := metrics.LogLoss(tc.probs, tc.labels); !near(got, tc.want, 1e-12) {
			t.Errorf("%s: LogLoss = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := metrics.LogLoss([]float64{1}, []bool{F}); !(got > 34 && got < 35) {
		t.Errorf("LogLoss of a certain, wrong prediction = %v, want ≈ 34.5 (−ln 1e-15)", got)
	}
}

func TestECE(t *testing.T) {
	nan := math.NaN()
	p4 := []float64{0.1, 0.2, 0.8, 0.9}
	for _, tc := range []struct {
		name   string
		probs  []float64
		labels []bool
		bins   int
		want   float64
	}{
		// bin [0,½): mean p .15, mean y 0 → ½·.15; bin [½,1]: .85 vs 1 → ½·.15.
		{"two bins", p4, []bool{F, F, T, T}, 2, 0.15},
		// one bin: mean p .5, mean y .5.
		{"one bin hides miscalibration", p4, []bool{F, F, T, T}, 1, 0},
		// bin 0: .15 vs .5 → ½·.35; bin 1: .85 vs 1 → ½·.15.
		{"mixed bin", p4, []bool{F, T, T, T}, 2, 0.25},
		{"calibrated", []float64{0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3}, []bool{T, T, T, F, F, F, F, F, F, F}, 10, 0},
		{"p = 1 in the last bin", []float64{1}, []bool{T}, 10, 0},
		{"p = 0.5 starts bin 1 of 2", []float64{0.5, 0.49}, []bool{T, F}, 2, (0.5 + 0.49) / 2},
		{"zero bins", p4, []bool{F, F, T, T}, 0, nan},
		{"empty", nil, nil, 10, nan},
		{"out of range", []float64{1.5}, []bool{T}, 10, nan},
		{"NaN", []float64{nan}, []bool{T}, 10, nan},
	} {
		if got := metrics.ECE(tc.probs, tc.labels, tc.bins); !near(got, tc.want, 1e-12) {
			t.Errorf("%s: ECE = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPrequentialWindow(t *testing.T) {
	if _, err := metrics.NewPrequential(0); err != metrics.ErrInvalidWindow {
		t.Fatalf("NewPrequential(0) err = %v, want ErrInvalidWindow", err)
	}
	p, err := metrics.NewPrequential(3)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Report(10); r.N != 0 || !math.IsNaN(r.AUC) || !math.IsNaN(r.LogLoss) || !math.IsNaN(r.ECE) {
		t.Errorf("empty window report = %+v, want N 0 and NaN metrics", r)
	}
	for _, s := range []struct {
		score float64
		label bool
	}{{0.1, F}, {0.9, T}, {0.2, F}, {0.8, T}} {
		p.Add(s.score, s.label)
	}
	// Window: (0.9,T) (0.2,F) (0.8,T).
	if p.Len() != 3 || p.Window() != 3 {
		t.Errorf("Len, Window = %d, %d; want 3, 3", p.Len(), p.Window())
	}
	scores, labels := p.Pairs()
	if len(scores) != 3 || scores[0] != 0.9 || scores[2] != 0.8 || !labels[0] || labels[1] {
		t.Errorf("Pairs = %v %v, want oldest-first [0.9 0.2 0.8] [T F T]", scores, labels)
	}
	if got := p.AUC(); got != 1 {
		t.Errorf("AUC = %v, want 1", got)
	}
	if got, want := p.LogLoss(), -(math.Log(0.9)+math.Log(0.8)+math.Log(0.8))/3; !near(got, want, 1e-12) {
		t.Errorf("LogLoss = %v, want %v", got, want)
	}
	p.Add(0.95, F) // window: (0.2,F) (0.8,T) (0.95,F): the positive beats one of two negatives.
	if got := p.AUC(); got != 0.5 {
		t.Errorf("AUC after eviction = %v, want 0.5", got)
	}
	p.Add(math.NaN(), T)
	if p.Dropped() != 1 || p.Len() != 3 {
		t.Errorf("after a NaN score: Dropped %d, Len %d; want 1, 3", p.Dropped(), p.Len())
	}
	if got, want := p.ECE(1), math.Abs((0.2+0.8+0.95)/3-1.0/3); !near(got, want, 1e-12) {
		t.Errorf("ECE(1) = %v, want %v", got, want)
	}
	p.Reset()
	if p.Len() != 0 || p.Dropped() != 0 {
		t.Errorf("after Reset: Len %d, Dropped %d", p.Len(), p.Dropped())
	}
}

// The window's report equals the batch metrics over the last Window pairs
// of the whole stream.
func TestPrequentialMatchesBatchOverTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	for _, window := range []int{1, 7, 100} {
		p, _ := metrics.NewPrequential(window)
		var all []float64
		var labels []bool
		for range 350 {
			s := rng.Float64()
			l := rng.Float64() < s
			p.Add(s, l)
			all, labels = append(all, s), append(labels, l)
			lo := max(0, len(all)-window)
			r := p.Report(10)
			if r.N != len(all)-lo || !near(r.AUC, metrics.AUC(all[lo:], labels[lo:]), 0) ||
				!near(r.LogLoss, metrics.LogLoss(all[lo:], labels[lo:]), 1e-12) ||
				!near(r.ECE, metrics.ECE(all[lo:], labels[lo:], 10), 1e-12) {
				t.Fatalf("window %d after %d adds: %+v, batch over the tail differs", window, len(all), r)
			}
		}
	}
}

func TestPrequentialConcurrentUse(t *testing.T) {
	p, _ := metrics.NewPrequential(64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for range 500 {
				p.Add(rng.Float64(), rng.IntN(2) == 0)
				if r := p.Report(5); r.N > 64 {
					t.Errorf("report over %d pairs, window 64", r.N)
				}
			}
		}()
	}
	wg.Wait()
	if p.Len() != 64 {
		t.Errorf("Len = %d, want 64", p.Len())
	}
}

func BenchmarkAUC(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	scores, labels := make([]float64, 10000), make([]bool, 10000)
	for i := range scores {
		scores[i] = rng.Float64()
		labels[i] = rng.Float64() < scores[i]
	}
	b.ReportAllocs()
	for b.Loop() {
		metrics.AUC(scores, labels)
	}
}
