package metrics

import (
	"errors"
	"math"
	"sort"
)

// AUCComparison compares the AUCs of two scorers on the same labelled
// examples (DeLong, DeLong & Clarke-Pearson 1988), accounting for the
// correlation between the two scorers' ranks.
type AUCComparison struct {
	// AUCA and AUCB are the two AUCs (as AUC computes them).
	AUCA, AUCB float64
	// Diff is AUCA − AUCB; SE its standard error; Z = Diff / SE (±Inf when
	// SE is 0 and Diff is not, 0 when both are).
	Diff, SE, Z float64
	// Positives and Negatives count the examples of each class.
	Positives, Negatives int
}

// ErrCompareAUC is returned by CompareAUC for unusable input: lengths that
// differ, a NaN score, or labels without both classes.
var ErrCompareAUC = errors.New("metrics: CompareAUC needs equal lengths, no NaN score and both classes")

// CompareAUC returns DeLong's paired comparison of the AUCs of scores a and
// b for the same labels, computed with mid-ranks in O(n log n) (Sun & Xu
// 2014): for each scorer, V10[i] is the share of negatives that positive i
// outranks (ties ½) and V01[j] the share of positives that outrank
// negative j; Var(AUCA − AUCB) = Var10(a−b)/m + Var01(a−b)/n over m
// positives and n negatives.
func CompareAUC(a, b []float64, labels []bool) (AUCComparison, error) {
	if len(a) != len(labels) || len(b) != len(labels) {
		return AUCComparison{}, ErrCompareAUC
	}
	var pos, neg []int
	for i, l := range labels {
		if math.IsNaN(a[i]) || math.IsNaN(b[i]) {
			return AUCComparison{}, ErrCompareAUC
		}
		if l {
			pos = append(pos, i)
		} else {
			neg = append(neg, i)
		}
	}
	m, n := len(pos), len(neg)
	if m == 0 || n == 0 {
		return AUCComparison{}, ErrCompareAUC
	}
	va10, va01, aucA := structural(a, pos, neg)
	vb10, vb01, aucB := structural(b, pos, neg)
	d10, d01 := make([]float64, m), make([]float64, n)
	for i := range d10 {
		d10[i] = va10[i] - vb10[i]
	}
	for j := range d01 {
		d01[j] = va01[j] - vb01[j]
	}
	v := sampleVar(d10)/float64(m) + sampleVar(d01)/float64(n)
	c := AUCComparison{AUCA: aucA, AUCB: aucB, Diff: aucA - aucB, SE: math.Sqrt(max(v, 0)), Positives: m, Negatives: n}
	switch {
	case c.SE > 0:
		c.Z = c.Diff / c.SE
	case c.Diff > 0:
		c.Z = math.Inf(1)
	case c.Diff < 0:
		c.Z = math.Inf(-1)
	}
	return c, nil
}

// structural returns DeLong's structural components of s (V10 per
// positive, V01 per negative) and its AUC.
func structural(s []float64, pos, neg []int) (v10, v01 []float64, auc float64) {
	m, n := float64(len(pos)), float64(len(neg))
	all := append(append(make([]int, 0, len(pos)+len(neg)), pos...), neg...)
	tz := midranks(s, all)
	tx := midranks(s, pos)
	ty := midranks(s, neg)
	v10 = make([]float64, len(pos))
	v01 = make([]float64, len(neg))
	var sum float64
	for i := range pos {
		v10[i] = (tz[i] - tx[i]) / n
		sum += tz[i]
	}
	for j := range neg {
		v01[j] = 1 - (tz[len(pos)+j]-ty[j])/m
	}
	auc = (sum - m*(m+1)/2) / (m * n)
	return v10, v01, auc
}

// midranks returns the mid-rank (1-based, ties averaged) of s[idx[k]]
// among s[idx[0…]], in the order of idx.
func midranks(s []float64, idx []int) []float64 {
	order := make([]int, len(idx))
	for k := range order {
		order[k] = k
	}
	sort.Slice(order, func(x, y int) bool { return s[idx[order[x]]] < s[idx[order[y]]] })
	r := make([]float64, len(idx))
	for i := 0; i < len(order); {
		j := i + 1
		for j < len(order) && s[idx[order[j]]] == s[idx[order[i]]] {
			j++
		}
		mid := float64(i+1+j) / 2
		for _, k := range order[i:j] {
			r[k] = mid
		}
		i = j
	}
	return r
}

// sampleVar is the unbiased sample variance (0 for fewer than 2 values).
func sampleVar(x []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return ss / float64(len(x)-1)
}
