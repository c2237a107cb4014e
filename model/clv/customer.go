package clv

import "math"

// Customer is the sufficient summary of one customer's purchase history at a
// calibration cutoff. All times are in the same caller-chosen unit (the CDNOW
// papers use weeks) and are measured from the customer's first purchase.
type Customer struct {
	// Frequency is x, the number of repeat purchases (distinct purchase days
	// after the first). A finite whole number ≥ 0.
	Frequency float64
	// Recency is t_x, the time from the first to the last purchase;
	// 0 when Frequency is 0. 0 ≤ Recency ≤ T.
	Recency float64
	// T is the customer's age: the time from the first purchase to the cutoff.
	T float64
	// MonetaryMean is the mean value of the repeat purchases (same-day
	// purchases summed), used only by the Gamma-Gamma model; 0 when
	// Frequency is 0. Finite and ≥ 0.
	MonetaryMean float64
}

// Validate reports whether c is a possible summary. The error wraps
// [ErrInvalidInput].
func (c Customer) Validate() error { return c.validate(-1) }

func (c Customer) validate(i int) error {
	switch {
	case !finiteNonNeg(c.Frequency):
		return inputErr(i, "Frequency", "must be finite and ≥ 0")
	case c.Frequency != math.Trunc(c.Frequency):
		return inputErr(i, "Frequency", "must be a whole number")
	case !finiteNonNeg(c.Recency):
		return inputErr(i, "Recency", "must be finite and ≥ 0")
	case !finiteNonNeg(c.T):
		return inputErr(i, "T", "must be finite and ≥ 0")
	case c.Recency > c.T:
		return inputErr(i, "Recency", "must not exceed T")
	case !finiteNonNeg(c.MonetaryMean):
		return inputErr(i, "MonetaryMean", "must be finite and ≥ 0")
	}
	return nil
}

func finiteNonNeg(v float64) bool { return v >= 0 && !math.IsInf(v, 1) } // false for NaN

func finitePos(v float64) bool { return v > 0 && !math.IsInf(v, 1) } // false for NaN
