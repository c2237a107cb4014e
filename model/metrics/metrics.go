package metrics

import (
	"math"
	"sort"
)

// LogLossEpsilon is the clipping bound of [LogLoss]: probabilities are
// clipped to [LogLossEpsilon, 1−LogLossEpsilon] so that a confident wrong
// prediction costs about 34.5 nats rather than +Inf.
const LogLossEpsilon = 1e-15

// AUC returns the area under the ROC curve of scores for the binary labels:
// the probability that a random positive scores higher than a random
// negative, ties counting one half (the Mann-Whitney U statistic with
// mid-ranks). Scores are any ordered values, ±Inf included. It is NaN if the
// lengths differ, a score is NaN, or the labels do not contain both classes.
func AUC(scores []float64, labels []bool) float64 {
	if len(scores) != len(labels) {
		return math.NaN()
	}
	idx := make([]int, len(scores))
	for i, s := range scores {
		if math.IsNaN(s) {
			return math.NaN()
		}
		idx[i] = i
	}
	sort.Slice(idx, func(i, j int) bool { return scores[idx[i]] < scores[idx[j]] })
	var nPos, nNeg, rankSum float64
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		// Ranks i+1 … j share the mid-rank (i+1+j)/2.
		mid := float64(i+1+j) / 2
		for _, k := range idx[i:j] {
			if labels[k] {
				nPos++
				rankSum += mid
			} else {
				nNeg++
			}
		}
		i = j
	}
	if nPos == 0 || nNeg == 0 {
		return math.NaN()
	}
	return (rankSum - nPos*(nPos+1)/2) / (nPos * nNeg)
}

// LogLoss returns the mean negative log-likelihood, in nats, of the labels
// under the predicted probabilities of the positive class, each clipped to
// [LogLossEpsilon, 1−LogLossEpsilon]. It is NaN if the input is empty, the
// lengths differ, or a probability is NaN or outside [0, 1].
func LogLoss(probs []float64, labels []bool) float64 {
	if len(probs) != len(labels) || len(probs) == 0 {
		return math.NaN()
	}
	sum := 0.0
	for i, p := range probs {
		if !(p >= 0 && p <= 1) {
			return math.NaN()
		}
		p = math.Min(math.Max(p, LogLossEpsilon), 1-LogLossEpsilon)
		if labels[i] {
			sum -= math.Log(p)
		} else {
			sum -= math.Log1p(-p)
		}
	}
	return sum / float64(len(probs))
}

// ECE returns the expected calibration error of the probabilities over
// bins equal-width bins of [0, 1]: Σ_b (n_b/n)·|mean(p in b) − mean(y in b)|.
// Bin b holds the p with b ≤ p·bins < b+1, and p = 1 falls in the last bin.
// It is NaN if bins < 1, the input is empty, the lengths differ, or a
// probability is NaN or outside [0, 1].
func ECE(probs []float64, labels []bool, bins int) float64 {
	if bins < 1 || len(probs) != len(labels) || len(probs) == 0 {
		return math.NaN()
	}
	type bin struct{ n, sumP, sumY float64 }
	bs := make([]bin, bins)
	for i, p := range probs {
		if !(p >= 0 && p <= 1) {
			return math.NaN()
		}
		b := min(int(p*float64(bins)), bins-1)
		bs[b].n++
		bs[b].sumP += p
		if labels[i] {
			bs[b].sumY++
		}
	}
	ece := 0.0
	for _, b := range bs {
		if b.n > 0 {
			ece += math.Abs(b.sumP-b.sumY) / float64(len(probs)) // (n_b/n)·|Σp/n_b − Σy/n_b|
		}
	}
	return ece
}
