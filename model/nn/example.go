package nn

import (
	"fmt"
	"math"
)

// Example is one input row: numeric features, hashed tokens and, for
// training, per-head labels.
type Example struct {
	// Numeric holds one raw value per Arch.NumericFeatures entry, in order.
	// Values must be finite; they are transformed with squash and
	// standardised by the network's running statistics.
	Numeric []float64
	// Tokens maps a token field (an Arch.TokenFields entry) to bucket ids,
	// already murmur3-hashed modulo Arch.HashBuckets by the caller. A field
	// may be absent or empty (its embedding bag is then zero). Repeated ids
	// count once per occurrence.
	Tokens map[string][]uint32
	// Labels holds one label in [0, 1] per head; read only where Mask is
	// true. Ignored by Predict and Explain.
	Labels []float64
	// Mask reports, per head, whether the label is known. A head whose label
	// is unknown contributes nothing to the loss. Ignored by Predict and
	// Explain.
	Mask []bool
}

// squash is the numeric input transform: log1p(x) for x >= 0 and
// -log1p(-x) for x < 0, so it is monotone, odd and compresses heavy tails.
func squash(x float64) float64 {
	if x < 0 {
		return -math.Log1p(-x)
	}
	return math.Log1p(x)
}

// unsquash inverts squash.
func unsquash(y float64) float64 {
	if y < 0 {
		return -math.Expm1(-y)
	}
	return math.Expm1(y)
}

// checkInputs validates the inputs of ex (not its labels). idx is the
// example's index for error messages, -1 for a single example.
func (a *Arch) checkInputs(ex *Example, idx int) error {
	if len(ex.Numeric) != len(a.NumericFeatures) {
		return &InputError{Example: idx, Field: "numeric", Err: ErrNumericLength,
			Msg: fmt.Sprintf("got %d values, want %d", len(ex.Numeric), len(a.NumericFeatures))}
	}
	for i, v := range ex.Numeric {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &InputError{Example: idx, Field: a.NumericFeatures[i], Err: ErrNonFinite, Msg: fmt.Sprint(v)}
		}
	}
	known := 0
	buckets := uint32(a.HashBuckets)
	for _, f := range a.TokenFields {
		ids, ok := ex.Tokens[f]
		if !ok {
			continue
		}
		known++
		for _, id := range ids {
			if id >= buckets {
				return &InputError{Example: idx, Field: f, Err: ErrBucketRange,
					Msg: fmt.Sprintf("bucket %d, hash_buckets is %d", id, a.HashBuckets)}
			}
		}
	}
	if known != len(ex.Tokens) {
		for f := range ex.Tokens {
			if !a.hasTokenField(f) {
				return &InputError{Example: idx, Field: f, Err: ErrUnknownField, Msg: "not in token_fields"}
			}
		}
	}
	return nil
}

func (a *Arch) hasTokenField(f string) bool {
	for _, g := range a.TokenFields {
		if g == f {
			return true
		}
	}
	return false
}

// checkLabels validates the training targets of ex.
func (a *Arch) checkLabels(ex *Example, idx int) error {
	if len(ex.Mask) != len(a.Heads) {
		return &InputError{Example: idx, Field: "mask", Err: ErrLabels,
			Msg: fmt.Sprintf("got %d entries, want one per head (%d)", len(ex.Mask), len(a.Heads))}
	}
	if len(ex.Labels) != len(a.Heads) {
		return &InputError{Example: idx, Field: "labels", Err: ErrLabels,
			Msg: fmt.Sprintf("got %d entries, want one per head (%d)", len(ex.Labels), len(a.Heads))}
	}
	for h, known := range ex.Mask {
		if !known {
			continue
		}
		y := ex.Labels[h]
		if math.IsNaN(y) || math.IsInf(y, 0) {
			return &InputError{Example: idx, Field: a.Heads[h], Err: ErrNonFinite, Msg: fmt.Sprint(y)}
		}
		if y < 0 || y > 1 {
			return &InputError{Example: idx, Field: a.Heads[h], Err: ErrLabels, Msg: fmt.Sprintf("label %v not in [0, 1]", y)}
		}
	}
	return nil
}

// normalizer keeps Welford running statistics of the squashed numeric
// inputs.
type normalizer struct {
	count uint64
	mean  []float64
	m2    []float64
}

func newNormalizer(n int) normalizer {
	return normalizer{mean: make([]float64, n), m2: make([]float64, n)}
}

func (z *normalizer) clone() normalizer {
	return normalizer{count: z.count, mean: append([]float64(nil), z.mean...), m2: append([]float64(nil), z.m2...)}
}

// observe adds one example's raw numeric values.
func (z *normalizer) observe(raw []float64) {
	z.count++
	n := float64(z.count)
	for i, x := range raw {
		t := squash(x)
		d := t - z.mean[i]
		z.mean[i] += d / n
		z.m2[i] += d * (t - z.mean[i])
	}
}

// minVariance is the variance below which a feature is treated as constant
// and only centred, not scaled.
const minVariance = 1e-12

// freeze writes the standardisation of the current statistics:
// standardised = (squash(x) - shift) * scale.
func (z *normalizer) freeze(shift, scale []float64) {
	copy(shift, z.mean)
	for i := range scale {
		scale[i] = 1
		if z.count > 1 {
			if v := z.m2[i] / float64(z.count); v > minVariance {
				scale[i] = 1 / math.Sqrt(v)
			}
		}
	}
}

// standardize writes the standardised numeric inputs of raw into dst.
func standardize(dst, raw, shift, scale []float64) {
	for i, x := range raw {
		dst[i] = (squash(x) - shift[i]) * scale[i]
	}
}
