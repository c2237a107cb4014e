package bench

import (
	"math"
	"time"
)

// Histogram buckets durations logarithmically: histSub buckets per power of
// two from 1µs, so a quantile is within about 1.1 % of the true value. The
// zero value is ready; it is not safe for concurrent use.
type Histogram struct {
	// Counts by bucket index (see bucketOf); trailing empty buckets are
	// omitted. Exported for JSON between processes.
	Counts []uint64 `json:"counts"`
	// N is the number of observations, Sum their total in nanoseconds,
	// MaxNs the largest.
	N     uint64 `json:"n"`
	SumNs int64  `json:"sum_ns"`
	MaxNs int64  `json:"max_ns"`
}

const (
	histSub  = 64 // buckets per doubling
	histBase = int64(time.Microsecond)
)

// bucketOf returns the bucket of d: 0 for d < 1µs, else
// 1 + histSub·log2(d/1µs) rounded down.
func bucketOf(d int64) int {
	if d < histBase {
		return 0
	}
	return 1 + int(histSub*math.Log2(float64(d)/float64(histBase)))
}

// bucketUpper returns the upper bound of bucket i in nanoseconds.
func bucketUpper(i int) float64 {
	if i == 0 {
		return float64(histBase)
	}
	return float64(histBase) * math.Exp2(float64(i)/histSub)
}

// Observe adds one duration; negative ones count as 0.
func (h *Histogram) Observe(d time.Duration) {
	ns := max(int64(d), 0)
	b := bucketOf(ns)
	if b >= len(h.Counts) {
		h.Counts = append(h.Counts, make([]uint64, b+1-len(h.Counts))...)
	}
	h.Counts[b]++
	h.N++
	h.SumNs += ns
	h.MaxNs = max(h.MaxNs, ns)
}

// Merge adds o's observations.
func (h *Histogram) Merge(o *Histogram) {
	if len(o.Counts) > len(h.Counts) {
		h.Counts = append(h.Counts, make([]uint64, len(o.Counts)-len(h.Counts))...)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.SumNs += o.SumNs
	h.MaxNs = max(h.MaxNs, o.MaxNs)
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1): the geometric middle of the
// bucket holding it, capped by the largest observation; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.N)))
	rank = min(max(rank, 1), h.N)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			v := bucketUpper(i)
			if i > 0 {
				v = math.Sqrt(bucketUpper(i-1) * v)
			}
			return time.Duration(min(v, float64(h.MaxNs)))
		}
	}
	return time.Duration(h.MaxNs)
}

// Summary is a histogram's quantiles in milliseconds.
type Summary struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// Summary returns the histogram's count, mean and quantiles.
func (h *Histogram) Summary() Summary {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	s := Summary{Count: h.N, MaxMs: float64(h.MaxNs) / 1e6}
	if h.N > 0 {
		s.MeanMs = float64(h.SumNs) / float64(h.N) / 1e6
	}
	s.P50Ms, s.P99Ms, s.P999Ms = ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999))
	return s
}
