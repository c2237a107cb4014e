package nn

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// testArch is a small architecture for the synthetic problem.
func testArch() Arch {
	return Arch{
		NumericFeatures: []string{"recency_days", "frequency", "monetary", "balance"},
		HashBuckets:     64,
		Hidden:          []int{16, 8},
		BatchSize:       64,
		LearningRate:    0.02,
	}
}

// synth draws n examples of a learnable two-head problem: the purchase head
// is a threshold on numeric features plus a category effect, the repeat head
// depends on the brand and on monetary value. The repeat label is unknown
// for about a fifth of the examples.
func synth(seed uint64, n int) []Example {
	rng := rand.New(rand.NewPCG(seed, 99))
	exs := make([]Example, n)
	for i := range exs {
		recency := math.Exp(rng.Float64() * 5)
		freq := float64(rng.IntN(40))
		monetary := math.Exp(rng.NormFloat64()*1.2 + 3)
		balance := rng.NormFloat64() * 200
		cats := make([]uint32, 1+rng.IntN(3))
		for j := range cats {
			cats[j] = uint32(rng.IntN(64))
		}
		var brands []uint32
		for j := rng.IntN(3); j > 0; j-- {
			brands = append(brands, uint32(rng.IntN(64)))
		}
		var terms []uint32
		for j := rng.IntN(3); j > 0; j-- {
			terms = append(terms, uint32(rng.IntN(64)))
		}
		catEffect := -1.0
		if cats[0] < 24 {
			catEffect = 1.5
		}
		z0 := 1.5*(squash(freq)-2.5) - 1.2*(squash(recency)-2.5) + catEffect
		brandEffect := -1.0
		if len(brands) > 0 && brands[0]%2 == 0 {
			brandEffect = 1.5
		}
		z1 := brandEffect + (squash(monetary) - 3)
		tokens := map[string][]uint32{"category": cats}
		if brands != nil {
			tokens["brand"] = brands
		}
		if terms != nil {
			tokens["term"] = terms
		}
		exs[i] = Example{
			Numeric: []float64{recency, freq, monetary, balance},
			Tokens:  tokens,
			Labels:  []float64{step(z0), step(z1)},
			Mask:    []bool{true, rng.Float64() > 0.2},
		}
	}
	return exs
}

func step(z float64) float64 {
	if z > 0 {
		return 1
	}
	return 0
}

// auc is the area under the ROC curve of scores against binary labels
// (probability that a random positive outranks a random negative, ties
// counting half).
func auc(scores, labels []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var pos, neg, rankSum float64
	for r := 0; r < len(idx); {
		s := r
		for s < len(idx) && scores[idx[s]] == scores[idx[r]] {
			s++
		}
		avg := float64(r+s+1) / 2 // mean 1-based rank of the tie group
		for _, i := range idx[r:s] {
			if labels[i] == 1 {
				rankSum += avg
			}
		}
		r = s
	}
	for _, y := range labels {
		if y == 1 {
			pos++
		} else {
			neg++
		}
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

func TestAUCHelper(t *testing.T) {
	for _, tc := range []struct {
		scores, labels []float64
		want           float64
	}{
		{[]float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}, 1},
		{[]float64{0.9, 0.8, 0.2, 0.1}, []float64{0, 0, 1, 1}, 0},
		{[]float64{0.5, 0.5, 0.5, 0.5}, []float64{0, 1, 0, 1}, 0.5},
		{[]float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.75},
	} {
		if got := auc(tc.scores, tc.labels); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("auc(%v, %v) = %v, want %v", tc.scores, tc.labels, got, tc.want)
		}
	}
}

func newTestNetwork(t testing.TB, a Arch) *Network {
	t.Helper()
	n, err := NewNetwork(a)
	if err != nil {
		t.Fatalf("NewNetwork: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func snapshot(t testing.TB, n *Network) *Model {
	t.Helper()
	m, err := n.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return m
}
