package clv

import "math"

// MaxDiscountPeriods bounds the horizon, in time units, that [CLV] discounts
// period by period.
const MaxDiscountPeriods = 100000

// CLV returns the customer's expected (discounted) spend over the next
// horizon time units: the Gamma-Gamma expected transaction value times the
// BG/NBD expected number of purchases.
//
// The product is exact only because the Gamma-Gamma model assumes that spend
// is independent of the purchase process. With discountPerPeriod d = 0 it is
// ExpectedSpend(c) · ExpectedPurchases(horizon, c). With d > 0 the horizon is
// cut into periods of one time unit (the last may be shorter); the purchases
// expected in period k, ExpectedPurchases(k) − ExpectedPurchases(k−1), are
// discounted by (1+d)^−k, i.e. as if they happened at the end of the period
// (the approximation lifetimes uses; finer units make it more accurate).
//
// CLV returns NaN if a model or c is invalid, horizon or d is negative or not
// finite, the expected spend does not exist, or d > 0 and the horizon spans
// more than [MaxDiscountPeriods] periods.
func CLV(bg BGNBD, gg GammaGamma, c Customer, horizon, discountPerPeriod float64) float64 {
	if !finiteNonNeg(horizon) || !finiteNonNeg(discountPerPeriod) {
		return math.NaN()
	}
	spend := gg.ExpectedSpend(c)
	if math.IsNaN(spend) {
		return math.NaN()
	}
	if discountPerPeriod == 0 {
		return spend * bg.ExpectedPurchases(horizon, c)
	}
	if horizon > MaxDiscountPeriods {
		return math.NaN()
	}
	total, prev := 0.0, 0.0
	for k := 1.0; k-1 < horizon; k++ {
		cum := bg.ExpectedPurchases(math.Min(k, horizon), c)
		if math.IsNaN(cum) {
			return math.NaN()
		}
		total += (cum - prev) / math.Pow(1+discountPerPeriod, k)
		prev = cum
	}
	return spend * total
}
