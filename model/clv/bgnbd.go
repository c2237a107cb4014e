package clv

import (
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mathext"
)

// BGNBD holds the four parameters of the BG/NBD model: the purchase rate
// λ ~ Gamma(shape R, rate Alpha) and the drop-out probability
// p ~ Beta(A, B). All must be finite and > 0. Alpha is in the reciprocal of
// the time unit of the customer summaries it was fitted on.
type BGNBD struct {
	R, Alpha, A, B float64
}

// Validate reports whether all parameters are finite and > 0.
func (m BGNBD) Validate() error {
	switch {
	case !finitePos(m.R):
		return inputErr(-1, "BGNBD.R", "must be finite and > 0")
	case !finitePos(m.Alpha):
		return inputErr(-1, "BGNBD.Alpha", "must be finite and > 0")
	case !finitePos(m.A):
		return inputErr(-1, "BGNBD.A", "must be finite and > 0")
	case !finitePos(m.B):
		return inputErr(-1, "BGNBD.B", "must be finite and > 0")
	}
	return nil
}

// String formats the parameters.
func (m BGNBD) String() string {
	return fmt.Sprintf("BG/NBD{r=%.4g α=%.4g a=%.4g b=%.4g}", m.R, m.Alpha, m.A, m.B)
}

// FitBGNBD fits the BG/NBD model to cs by maximum likelihood (equation 6 of
// Fader, Hardie & Lee 2005). Every customer must pass [Customer.Validate]
// (MonetaryMean is not used), at least one must have a repeat purchase, and
// the returned error wraps [ErrInvalidInput], [ErrNoData] or [ErrFit]. A fit
// that stops at MaxEvaluations is returned with FitResult.Converged false and
// no error.
func FitBGNBD(cs []Customer, opts FitOptions) (BGNBD, FitResult, error) {
	if err := opts.Validate(); err != nil {
		return BGNBD{}, FitResult{}, err
	}
	opts = opts.withDefaults()
	d, err := poolBG(cs)
	if err != nil {
		return BGNBD{}, FitResult{}, err
	}
	if d.n == 0 {
		return BGNBD{}, FitResult{}, fmt.Errorf("%w: no customers", ErrNoData)
	}
	if !d.repeat {
		return BGNBD{}, FitResult{}, fmt.Errorf("%w: no customer has a repeat purchase", ErrNoData)
	}
	scratch := make([]float64, 2*len(d.xs))
	n := float64(d.n)
	f := func(x []float64) float64 {
		return -d.ll(math.Exp(x[0]), math.Exp(x[1]), math.Exp(x[2]), math.Exp(x[3]), scratch) / n
	}
	x, fx, res, err := minimizeLog(f, []float64{0, 0, 0, 0}, opts)
	if err != nil {
		return BGNBD{}, res, err
	}
	m := BGNBD{R: math.Exp(x[0]), Alpha: math.Exp(x[1]), A: math.Exp(x[2]), B: math.Exp(x[3])}
	res.N = d.n
	res.LogLikelihood = -fx * n
	return m, res, nil
}

// LogLikelihood returns the total log-likelihood of cs under m, or NaN if m
// or any customer is invalid.
func (m BGNBD) LogLikelihood(cs []Customer) float64 {
	if m.Validate() != nil {
		return math.NaN()
	}
	d, err := poolBG(cs)
	if err != nil {
		return math.NaN()
	}
	return d.ll(m.R, m.Alpha, m.A, m.B, make([]float64, 2*len(d.xs)))
}

// PAlive returns P(alive at T | x, t_x, T), the probability that the
// customer has not dropped out by the end of the calibration period
// (equation A3 of Fader, Hardie & Lee 2005). It is 1 when c has no repeat
// purchase (the model lets customers drop out only after a repeat purchase)
// and NaN if m or c is invalid. Because of that, it is a poor score for
// ranking who will buy next; use [BGNBD.ExpectedPurchases] for that.
func (m BGNBD) PAlive(c Customer) float64 {
	if m.Validate() != nil || c.Validate() != nil {
		return math.NaN()
	}
	return m.pAlive(c)
}

func (m BGNBD) pAlive(c Customer) float64 {
	x := c.Frequency
	if x == 0 {
		return 1
	}
	// 1 / (1 + a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)), the odds in logs so
	// that a huge ratio gives 0 rather than Inf/Inf.
	lodds := math.Log(m.A) - math.Log(m.B+x-1) + (m.R+x)*(math.Log(m.Alpha+c.T)-math.Log(m.Alpha+c.Recency))
	return 1 / (1 + math.Exp(lodds))
}

// ExpectedPurchases returns E[Y(t) | x, t_x, T], the expected number of
// purchases in the t time units after the end of the customer's calibration
// period (equation 10 of Fader, Hardie & Lee 2005). It returns NaN if m or c
// is invalid or t is negative or not finite.
//
// The hypergeometric function of equation 10 is evaluated through Euler's
// transformation,
//
//	((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z) = (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z),
//
// z = t/(α+T+t), whose power series is short for every x and has no 0/0 at
// a = 1. Where that series converges too slowly (t hundreds of times α+T)
// or a+b+x ≤ 2, the equivalent integral over the posterior of p is
// evaluated by quadrature instead.
func (m BGNBD) ExpectedPurchases(t float64, c Customer) float64 {
	if m.Validate() != nil || c.Validate() != nil || !finiteNonNeg(t) {
		return math.NaN()
	}
	if t == 0 {
		return 0
	}
	return m.pAlive(c) * conditionalPurchases(m.R, m.Alpha, m.A, m.B, c.Frequency, c.T, t)
}

// maxSeriesTerms bounds the hypergeometric power series; beyond it the
// integral is used. With z ≤ 0.998 the series converges well within it.
const maxSeriesTerms = 10000

// conditionalPurchases returns the expected purchases in (T, T+t] of a
// customer alive at T with x repeat purchases:
//
//	E[(1 − e^(−λpt))/p],  λ ~ Gamma(r+x, α+T), p ~ Beta(a, b+x) independent,
//	= (a+b+x−1)/(a−1) · [1 − (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z)].
//
// With B = a−1, L = ln(1−z) and g = ₂F₁ − 1 the bracket divided by B is
// −expm1(BL)/B − e^(BL)·g/B; g/B is summed directly (its terms carry the
// factor (B)_n/B = (B+1)_(n−1)), so the expression is exact at a = 1 and free
// of cancellation for small t.
func conditionalPurchases(r, alpha, a, b, x, T, t float64) float64 {
	A, B, C := a+b-1-r, a-1, a+b+x-1
	z := t / (alpha + T + t)
	if C > 1 && z < 1 { // z rounds to 1 when t dwarfs α+T
		if gb, ok := hyp2f1SeriesOverB(A, B, C, z); ok {
			L := math.Log1p(-z)
			e := -L // lim_{B→0} −expm1(BL)/B
			if B != 0 {
				e = -math.Expm1(B*L) / B
			}
			return C * (e - math.Exp(B*L)*gb)
		}
	}
	return conditionalPurchasesIntegral(r, alpha, a, b, x, T, t)
}

// hyp2f1SeriesOverB returns (₂F₁(A, B; C; z) − 1)/B by its power series,
// for C > 0 and 0 ≤ z < 1, and false if the series does not converge within
// maxSeriesTerms.
func hyp2f1SeriesOverB(A, B, C, z float64) (float64, bool) {
	term := A * z / C // first term of (F−1)/B
	sum := term
	nMin := math.Max(-A, -B) // past it the terms keep their sign
	for n := 1.0; n < maxSeriesTerms; n++ {
		if term == 0 { // A is a non-positive integer: a polynomial
			return sum, true
		}
		ratio := (A + n) * (B + n) / ((C + n) * (n + 1)) * z
		term *= ratio
		sum += term
		if math.IsInf(sum, 0) || math.IsNaN(sum) {
			return 0, false
		}
		if n > nMin {
			// For large n the ratio tends to z from below, so the tail is
			// at most |term|·ρ/(1−ρ) with ρ = max(ratio, z).
			rho := math.Max(math.Abs(ratio), z)
			if rho < 1 && math.Abs(term)*rho/(1-rho) <= 1e-16*math.Abs(sum) {
				return sum, true
			}
		}
	}
	return 0, false
}

// conditionalPurchasesIntegral evaluates conditionalPurchases as
//
//	∫₀¹ (1 − (1 + p·t/(α+T))^−(r+x)) / p · Beta(p; a, b+x) dp
//
// (λ integrated out in closed form) by tanh-sinh quadrature in
// p = σ(π sinh u), σ the logistic function, which absorbs the Beta density's
// endpoint singularities and resolves both ends of (0, 1) to full relative
// precision. It is accurate to about 1e-10 for shape parameters up to a few
// hundred, and degrades gracefully (never NaN from valid input) beyond.
func conditionalPurchasesIntegral(r, alpha, a, b, x, T, t float64) float64 {
	const step, uMax = 1.0 / 64, 6.5
	k := t / (alpha + T)
	shape := r + x
	bx := b + x
	lbeta := mathext.Lbeta(a, bx)
	sum := 0.0
	for i := -uMax / step; i <= uMax/step; i++ {
		u := i * step
		v := math.Pi * math.Sinh(u)
		// log p and log(1−p), each accurate at its own end.
		lp, lq := -logOnePlusExp(-v), -logOnePlusExp(v)
		p := math.Exp(lp)
		// density · dp/du = p^(a−1) (1−p)^(b+x−1) / B(a, b+x) · π cosh u · p (1−p)
		w := math.Exp(a*lp+bx*lq-lbeta) * math.Pi * math.Cosh(u)
		if w == 0 || p == 0 {
			continue
		}
		h := -math.Expm1(-shape*math.Log1p(p*k)) / p
		sum += w * h
	}
	return sum * step
}

// logOnePlusExp returns ln(1 + e^v) without overflow.
func logOnePlusExp(v float64) float64 {
	if v > 0 {
		return v + math.Log1p(math.Exp(-v))
	}
	return math.Log1p(math.Exp(v))
}

// bgRow is one distinct (x, t_x, T) summary with its multiplicity.
type bgRow struct {
	xi    int // index into bgData.xs
	tx, T float64
	w     float64
}

// bgData is a customer set pooled by distinct summary, with the distinct
// frequencies listed once so that the Gamma and Beta functions are evaluated
// once per frequency and likelihood evaluation.
type bgData struct {
	xs     []float64
	rows   []bgRow
	n      int
	repeat bool
}

func poolBG(cs []Customer) (*bgData, error) {
	type key struct{ x, tx, T float64 }
	counts := make(map[key]int)
	for i, c := range cs {
		if err := c.validate(i); err != nil {
			return nil, err
		}
		tx := c.Recency
		if c.Frequency == 0 {
			tx = 0 // t_x does not enter the likelihood when x = 0
		}
		counts[key{c.Frequency, tx, c.T}]++
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { // deterministic summation order
		a, b := keys[i], keys[j]
		if a.x != b.x {
			return a.x < b.x
		}
		if a.tx != b.tx {
			return a.tx < b.tx
		}
		return a.T < b.T
	})
	d := &bgData{n: len(cs), rows: make([]bgRow, 0, len(keys))}
	for _, k := range keys {
		if len(d.xs) == 0 || d.xs[len(d.xs)-1] != k.x {
			d.xs = append(d.xs, k.x)
		}
		if k.x > 0 {
			d.repeat = true
		}
		d.rows = append(d.rows, bgRow{xi: len(d.xs) - 1, tx: k.tx, T: k.T, w: float64(counts[k])})
	}
	return d, nil
}

// ll is the total BG/NBD log-likelihood; scratch has room for 2·len(d.xs).
func (d *bgData) ll(r, alpha, a, b float64, scratch []float64) float64 {
	cx, dx := scratch[:len(d.xs)], scratch[len(d.xs):2*len(d.xs)]
	lgr := lgamma(r)
	lbab := mathext.Lbeta(a, b)
	la := math.Log(a)
	for i, x := range d.xs {
		// ln Γ(r+x)/Γ(r) + ln B(a, b+x)/B(a, b)
		cx[i] = lgamma(r+x) - lgr + mathext.Lbeta(a, b+x) - lbab
		if x > 0 {
			dx[i] = la - math.Log(b+x-1) // ln B(a+1, b+x−1)/B(a, b+x)
		}
	}
	sum := float64(d.n) * r * math.Log(alpha)
	for _, row := range d.rows {
		x := d.xs[row.xi]
		t1 := -(r + x) * math.Log(alpha+row.T)
		if x > 0 {
			t2 := dx[row.xi] - (r+x)*math.Log(alpha+row.tx)
			t1 = logAddExp(t1, t2)
		}
		sum += row.w * (cx[row.xi] + t1)
	}
	return sum
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// logAddExp returns ln(e^a + e^b) without overflow.
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}
