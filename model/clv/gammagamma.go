package clv

import (
	"fmt"
	"math"
	"sort"
)

// GammaGamma holds the parameters of the Gamma-Gamma spend model: each
// transaction value is Gamma(shape P, rate ν) and ν ~ Gamma(shape Q,
// rate V) across customers (V is γ in Fader & Hardie's notation). All must be
// finite and > 0; V is in the currency unit of the data.
type GammaGamma struct {
	P, Q, V float64
}

// Validate reports whether all parameters are finite and > 0.
func (m GammaGamma) Validate() error {
	switch {
	case !finitePos(m.P):
		return inputErr(-1, "GammaGamma.P", "must be finite and > 0")
	case !finitePos(m.Q):
		return inputErr(-1, "GammaGamma.Q", "must be finite and > 0")
	case !finitePos(m.V):
		return inputErr(-1, "GammaGamma.V", "must be finite and > 0")
	}
	return nil
}

// String formats the parameters.
func (m GammaGamma) String() string {
	return fmt.Sprintf("GammaGamma{p=%.4g q=%.4g v=%.4g}", m.P, m.Q, m.V)
}

// FitGammaGamma fits the Gamma-Gamma model by maximum likelihood on the
// customers with Frequency > 0 and MonetaryMean > 0 (the mean repeat value
// is the mean of Frequency transactions; customers without repeat purchases
// carry no spend information, and a zero mean has zero density). Every
// customer must pass [Customer.Validate]; the returned error wraps
// [ErrInvalidInput], [ErrNoData] or [ErrFit]. FitResult.N is the number of
// customers used.
func FitGammaGamma(cs []Customer, opts FitOptions) (GammaGamma, FitResult, error) {
	if err := opts.Validate(); err != nil {
		return GammaGamma{}, FitResult{}, err
	}
	opts = opts.withDefaults()
	d, err := poolGG(cs)
	if err != nil {
		return GammaGamma{}, FitResult{}, err
	}
	if d.n == 0 {
		return GammaGamma{}, FitResult{}, fmt.Errorf("%w: no customer with a repeat purchase of positive value", ErrNoData)
	}
	scratch := make([]float64, len(d.xs))
	n := float64(d.n)
	f := func(x []float64) float64 {
		return -d.ll(math.Exp(x[0]), math.Exp(x[1]), math.Exp(x[2]), scratch) / n
	}
	x, fx, res, err := minimizeLog(f, []float64{0, 0, 0}, opts)
	if err != nil {
		return GammaGamma{}, res, err
	}
	res.N = d.n
	res.LogLikelihood = -fx * n
	return GammaGamma{P: math.Exp(x[0]), Q: math.Exp(x[1]), V: math.Exp(x[2])}, res, nil
}

// LogLikelihood returns the total log-likelihood under m of the mean repeat
// values of the customers with Frequency > 0 and MonetaryMean > 0, or NaN if
// m or any customer is invalid.
func (m GammaGamma) LogLikelihood(cs []Customer) float64 {
	if m.Validate() != nil {
		return math.NaN()
	}
	d, err := poolGG(cs)
	if err != nil {
		return math.NaN()
	}
	return d.ll(m.P, m.Q, m.V, make([]float64, len(d.xs)))
}

// ExpectedSpend returns the posterior mean transaction value of the
// customer, E[M | x, m̄] = p(γ + x·m̄)/(px + q − 1), a weighted average of the
// population mean pγ/(q−1) and the customer's own mean m̄. For a customer
// without repeat purchases it is the population mean. It returns NaN if m or
// c is invalid or the mean does not exist (px + q ≤ 1).
func (m GammaGamma) ExpectedSpend(c Customer) float64 {
	if m.Validate() != nil || c.Validate() != nil {
		return math.NaN()
	}
	x, mean := c.Frequency, c.MonetaryMean
	if x == 0 {
		mean = 0
	}
	den := m.P*x + m.Q - 1
	if !(den > 0) {
		return math.NaN()
	}
	return m.P * (m.V + x*mean) / den
}

type ggRow struct {
	xi      int
	x, logx float64
	mean    float64
	logMean float64
}

// ggData pools the usable customers with the distinct frequencies listed
// once.
type ggData struct {
	xs   []float64
	rows []ggRow
	n    int
}

func poolGG(cs []Customer) (*ggData, error) {
	d := &ggData{}
	idx := make(map[float64]int)
	for i, c := range cs {
		if err := c.validate(i); err != nil {
			return nil, err
		}
		if c.Frequency == 0 || c.MonetaryMean == 0 {
			continue
		}
		if _, ok := idx[c.Frequency]; !ok {
			idx[c.Frequency] = len(d.xs)
			d.xs = append(d.xs, c.Frequency)
		}
		d.rows = append(d.rows, ggRow{
			xi: idx[c.Frequency], x: c.Frequency, logx: math.Log(c.Frequency),
			mean: c.MonetaryMean, logMean: math.Log(c.MonetaryMean),
		})
	}
	d.n = len(d.rows)
	sort.Slice(d.rows, func(i, j int) bool { // deterministic summation order
		a, b := d.rows[i], d.rows[j]
		if a.x != b.x {
			return a.x < b.x
		}
		return a.mean < b.mean
	})
	return d, nil
}

// ll is the total Gamma-Gamma log-likelihood (Fader & Hardie 2013, eq. 3):
// ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln γ + (px−1) ln m̄ + px ln x − (px+q) ln(γ + x m̄).
func (d *ggData) ll(p, q, v float64, scratch []float64) float64 {
	cx := scratch[:len(d.xs)]
	lgq := lgamma(q)
	for i, x := range d.xs {
		cx[i] = lgamma(p*x+q) - lgamma(p*x) - lgq
	}
	sum := float64(d.n) * q * math.Log(v)
	for _, r := range d.rows {
		px := p * r.x
		sum += cx[r.xi] + (px-1)*r.logMean + px*r.logx - (px+q)*math.Log(v+r.x*r.mean)
	}
	return sum
}
