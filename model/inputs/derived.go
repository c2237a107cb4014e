package inputs

import (
	"math"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/clv"
)

// Derived inputs: numeric inputs that are not snapshot features but are
// computed by the encoder from the snapshot's purchase summary
// (CustomerOf) and the BG/NBD and Gamma-Gamma fit bound to the encoder
// (Encoder.WithFit). They put the classical baselines into the network, so
// that its repeat-purchase head starts from what BG/NBD knows.
const (
	// InputBGNBDDefined is 1 when the other derived inputs were computed:
	// a fit is bound and the snapshot is a customer's (purchase_days ≥ 1,
	// a valid summary); 0 otherwise, and then they read 0.
	InputBGNBDDefined = "bgnbd_defined"
	// InputPAlive is BG/NBD's P(alive) of the customer.
	InputPAlive = "bgnbd_p_alive"
	// InputExpectedPurchases90d is BG/NBD's expected number of purchases
	// in the next 90 days (DerivedHorizonWeeks).
	InputExpectedPurchases90d = "bgnbd_expected_purchases_90d"
	// InputCLV90d is the undiscounted CLV over the next 90 days (Gamma-
	// Gamma expected spend times the expected purchases); 0 without a
	// Gamma-Gamma fit.
	InputCLV90d = "bgnbd_clv_90d"
)

// DerivedHorizonWeeks is the horizon of the derived inputs: 90 days, in
// the fit's unit (weeks).
const DerivedHorizonWeeks = 90.0 / 7

const (
	dDefined = iota
	dPAlive
	dExpected
	dCLV
	numDerived
	notDerived = -1
)

var derivedNames = [numDerived]string{InputBGNBDDefined, InputPAlive, InputExpectedPurchases90d, InputCLV90d}

// DerivedInputs returns the names of the derived inputs, in the order
// DefaultArch lists them. The slice is new on each call.
func DerivedInputs() []string { return append([]string(nil), derivedNames[:]...) }

// IsDerived reports whether name is a derived input.
func IsDerived(name string) bool { return derivedKind(name) != notDerived }

func derivedKind(name string) int {
	for i, n := range derivedNames {
		if n == name {
			return i
		}
	}
	return notDerived
}

// Fit is the customer-base fit the derived inputs are computed with: the
// parameters of registry.CLVParams, in weeks.
type Fit struct {
	// BGNBD parameters (Alpha per week).
	BGNBD clv.BGNBD
	// GammaGamma parameters; nil when none were fitted.
	GammaGamma *clv.GammaGamma
}

func (f *Fit) equal(o *Fit) bool {
	if f == nil || o == nil {
		return f == o
	}
	if f.BGNBD != o.BGNBD || (f.GammaGamma == nil) != (o.GammaGamma == nil) {
		return false
	}
	return f.GammaGamma == nil || *f.GammaGamma == *o.GammaGamma
}

type derivedValues [numDerived]float64

// Indices of the summary features in a Summary, in SummaryFeatures order.
const (
	sPurchaseDays = iota
	sRepeat
	sRecency
	sAge
	sAvgValue
	numSummary
)

var summaryNames = [numSummary]string{
	features.Defs[features.PurchaseDays].Name, features.Defs[features.RepeatTransactions].Name,
	features.Defs[features.RecencyWeeks].Name, features.Defs[features.AgeWeeks].Name, features.Defs[features.RepeatAvgValue].Name,
}

// SummaryFeatures returns the names of the snapshot features the derived
// inputs are computed from (what CustomerOf reads), in Summary order:
// purchase_days, repeat_transactions, recency_weeks, age_weeks,
// repeat_avg_value. The slice is new on each call.
func SummaryFeatures() []string { return append([]string(nil), summaryNames[:]...) }

// Summary holds the values of a snapshot's SummaryFeatures, in that order
// (0 when absent): everything the derived inputs depend on.
type Summary [numSummary]float64

// SummaryOf returns the summary of s.
func SummaryOf(s *features.Snapshot) Summary { return summaryOf(s.Features) }

func summaryOf(f map[string]float64) Summary {
	var sum Summary
	for i, n := range summaryNames {
		sum[i] = f[n]
	}
	return sum
}

// customer is CustomerOf for the summary.
func (sum *Summary) customer() (clv.Customer, bool) {
	return customerOf(sum[sPurchaseDays], sum[sRepeat], sum[sRecency], sum[sAge], sum[sAvgValue])
}

// values computes the derived inputs of a snapshot's summary (all 0
// without a fit or for a non-customer).
func (f *Fit) values(sum *Summary) derivedValues {
	var d derivedValues
	if f == nil {
		return d
	}
	c, ok := sum.customer()
	if !ok {
		return d
	}
	pa := f.BGNBD.PAlive(c)
	ey := f.BGNBD.ExpectedPurchases(DerivedHorizonWeeks, c)
	if math.IsNaN(pa) || math.IsNaN(ey) {
		return d
	}
	d[dDefined], d[dPAlive], d[dExpected] = 1, pa, ey
	if f.GammaGamma != nil {
		if spend := f.GammaGamma.ExpectedSpend(c); !math.IsNaN(spend) {
			d[dCLV] = spend * ey
		}
	}
	return d
}

// CustomerOf reads a customer's BG/NBD summary, in weeks, from snapshot
// features: Frequency = round(repeat_transactions), Recency =
// recency_weeks, T = max(age_weeks, Recency), MonetaryMean =
// repeat_avg_value (negative values read 0; Recency and MonetaryMean are 0
// without a repeat purchase). ok is false for a non-customer
// (purchase_days < 1) or an invalid summary (a NaN or infinite feature).
func CustomerOf(f map[string]float64) (c clv.Customer, ok bool) {
	sum := summaryOf(f)
	return sum.customer()
}

// CustomerOfVector is CustomerOf for a feature vector.
func CustomerOfVector(v *features.Vector) (c clv.Customer, ok bool) {
	return customerOf(v[features.PurchaseDays], v[features.RepeatTransactions], v[features.RecencyWeeks], v[features.AgeWeeks],
		v[features.RepeatAvgValue])
}

func customerOf(purchaseDays, repeat, recency, age, avg float64) (clv.Customer, bool) {
	if !(purchaseDays >= 1) {
		return clv.Customer{}, false
	}
	c := clv.Customer{Frequency: math.Max(0, math.Round(repeat)), Recency: math.Max(0, recency), T: math.Max(0, age),
		MonetaryMean: math.Max(0, avg)}
	if c.T < c.Recency {
		c.T = c.Recency
	}
	if c.Frequency == 0 {
		c.Recency, c.MonetaryMean = 0, 0
	}
	if c.Validate() != nil {
		return clv.Customer{}, false
	}
	return c, true
}
