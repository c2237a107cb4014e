package metrics_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/streamprofile/streamprofile/model/metrics"
)

// bruteDeLong computes DeLong's comparison from its definition, pair by
// pair: ψ(x, y) = 1 if x > y, ½ if equal, 0 otherwise.
func bruteDeLong(a, b []float64, labels []bool) (diff, se float64) {
	psi := func(x, y float64) float64 {
		switch {
		case x > y:
			return 1
		case x == y:
			return 0.5
		}
		return 0
	}
	var pos, neg []int
	for i, l := range labels {
		if l {
			pos = append(pos, i)
		} else {
			neg = append(neg, i)
		}
	}
	m, n := float64(len(pos)), float64(len(neg))
	d10 := make([]float64, len(pos))
	d01 := make([]float64, len(neg))
	var aucA, aucB float64
	for i, p := range pos {
		for j, q := range neg {
			pa, pb := psi(a[p], a[q]), psi(b[p], b[q])
			d10[i] += (pa - pb) / n
			d01[j] += (pa - pb) / m
			aucA += pa
			aucB += pb
		}
	}
	v := func(x []float64) float64 {
		var mu, ss float64
		for _, e := range x {
			mu += e
		}
		mu /= float64(len(x))
		for _, e := range x {
			ss += (e - mu) * (e - mu)
		}
		return ss / float64(len(x)-1)
	}
	return (aucA - aucB) / (m * n), math.Sqrt(v(d10)/m + v(d01)/n)
}

// TestCompareAUCMatchesDefinition: the mid-rank computation equals the
// pair-by-pair definition on random data with many ties.
func TestCompareAUCMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		n := 4 + rng.IntN(80)
		a, b, labels := make([]float64, n), make([]float64, n), make([]bool, n)
		for i := range a {
			labels[i] = rng.IntN(3) == 0
			a[i] = float64(rng.IntN(10))
			b[i] = a[i] + float64(rng.IntN(5)) - 2 // correlated with a
			if labels[i] {
				a[i]++
			}
		}
		labels[0], labels[1], labels[2], labels[3] = true, true, false, false
		c, err := metrics.CompareAUC(a, b, labels)
		if err != nil {
			t.Fatal(err)
		}
		diff, se := bruteDeLong(a, b, labels)
		if !near(c.Diff, diff, 1e-12) || !near(c.SE, se, 1e-12) {
			t.Fatalf("CompareAUC diff %v se %v, definition %v %v", c.Diff, c.SE, diff, se)
		}
		if !near(c.AUCA, metrics.AUC(a, labels), 1e-12) || !near(c.AUCB, metrics.AUC(b, labels), 1e-12) {
			t.Fatalf("AUCs %v %v differ from AUC", c.AUCA, c.AUCB)
		}
	}
}

// TestCompareAUCCases: identical scorers differ by exactly 0 with SE 0; a
// monotone transform does not change the AUC; a clearly better scorer
// gives a large z; bad input is an error.
func TestCompareAUCCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	n := 2000
	labels := make([]bool, n)
	good, noise, squashed := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range labels {
		labels[i] = rng.IntN(4) == 0
		x := rng.NormFloat64()
		if labels[i] {
			x += 1.5
		}
		good[i], noise[i], squashed[i] = x, rng.NormFloat64(), 1/(1+math.Exp(-x))
	}
	c, err := metrics.CompareAUC(good, good, labels)
	if err != nil || c.Diff != 0 || c.SE != 0 || c.Z != 0 {
		t.Errorf("identical scorers: %+v, %v", c, err)
	}
	if c, err = metrics.CompareAUC(good, squashed, labels); err != nil || math.Abs(c.Diff) > 1e-12 {
		t.Errorf("monotone transform: %+v, %v", c, err)
	}
	if c, err = metrics.CompareAUC(good, noise, labels); err != nil || c.Z < 10 || c.AUCA < 0.8 || math.Abs(c.AUCB-0.5) > 0.05 {
		t.Errorf("informative vs noise: %+v, %v", c, err)
	}
	for _, bad := range []struct {
		a, b []float64
		l    []bool
	}{
		{[]float64{1, 2}, []float64{1}, []bool{true, false}},
		{[]float64{1, math.NaN()}, []float64{1, 2}, []bool{true, false}},
		{[]float64{1, 2}, []float64{1, 2}, []bool{true, true}},
	} {
		if _, err := metrics.CompareAUC(bad.a, bad.b, bad.l); !errors.Is(err, metrics.ErrCompareAUC) {
			t.Errorf("CompareAUC(%v, %v, %v) error %v", bad.a, bad.b, bad.l, err)
		}
	}
}
