package clv_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/model/clv"
)

// Published BG/NBD fit on the CDNOW 1/10th sample, 39-week calibration
// (Fader, Hardie & Lee 2005, section 4).
var publishedBGNBD = clv.BGNBD{R: 0.243, Alpha: 4.414, A: 0.793, B: 2.426}

const publishedBGNBDLogLik = -9582.4

func relErr(got, want float64) float64 { return math.Abs(got-want) / math.Abs(want) }

func TestFitBGNBDReproducesPublishedCDNOWFit(t *testing.T) {
	s := loadCDNOW(t, data.CDNOWSample)
	// The published data set: 2,357 customers of whom 946 made a repeat
	// purchase in the 39 calibration weeks (Fader & Hardie 2013, Gamma-Gamma note).
	repeaters := 0
	for _, c := range s.customers {
		if c.Frequency > 0 {
			repeaters++
		}
	}
	if len(s.customers) != 2357 || repeaters != 946 {
		t.Fatalf("CDNOW sample summary has %d customers, %d repeaters; want 2357, 946", len(s.customers), repeaters)
	}

	m, res, err := clv.FitBGNBD(s.customers, clv.FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fit %v, LL %.4f, %d iterations, %d evaluations", m, res.LogLikelihood, res.Iterations, res.Evaluations)
	if !res.Converged || res.N != 2357 {
		t.Errorf("FitResult %+v: want converged with N = 2357", res)
	}
	for _, p := range []struct {
		name      string
		got, want float64
	}{
		{"r", m.R, publishedBGNBD.R},
		{"alpha", m.Alpha, publishedBGNBD.Alpha},
		{"a", m.A, publishedBGNBD.A},
		{"b", m.B, publishedBGNBD.B},
	} {
		if relErr(p.got, p.want) > 0.01 {
			t.Errorf("%s = %.4f, published %.3f (more than 1%% off)", p.name, p.got, p.want)
		}
	}
	if math.Abs(res.LogLikelihood-publishedBGNBDLogLik) > 0.1 {
		t.Errorf("log-likelihood %.3f, published %.1f", res.LogLikelihood, publishedBGNBDLogLik)
	}
	if ll := m.LogLikelihood(s.customers); math.Abs(ll-res.LogLikelihood) > 1e-6 {
		t.Errorf("LogLikelihood = %.6f, FitResult says %.6f", ll, res.LogLikelihood)
	}
	// The fit is a maximum: moving any parameter by 1% lowers the likelihood.
	for i := range 4 {
		for _, f := range []float64{0.99, 1.01} {
			q := [4]float64{m.R, m.Alpha, m.A, m.B}
			q[i] *= f
			pm := clv.BGNBD{R: q[0], Alpha: q[1], A: q[2], B: q[3]}
			if ll := pm.LogLikelihood(s.customers); ll > res.LogLikelihood {
				t.Errorf("%v has LL %.6f > fitted %.6f", pm, ll, res.LogLikelihood)
			}
		}
	}
}

// The worked example of Fader, Hardie & Lee (2005), section 4: sample
// customer 0001 (master id 00004) with x = 2, t_x = 30.43, T = 38.86 is
// expected to make 1.226 purchases in weeks 40-78.
func TestExpectedPurchasesPublishedExample(t *testing.T) {
	s := loadCDNOW(t, data.CDNOWSample)
	i := indexOf(s.ids, "00004")
	if i < 0 {
		t.Fatal("customer 00004 missing from the CDNOW sample")
	}
	c := s.customers[i]
	want := clv.Customer{Frequency: 2, Recency: 213.0 / 7, T: 272.0 / 7, MonetaryMean: (29.73 + 14.96) / 2}
	if math.Abs(c.Frequency-want.Frequency) > 0 || math.Abs(c.Recency-want.Recency) > 1e-12 ||
		math.Abs(c.T-want.T) > 1e-12 || math.Abs(c.MonetaryMean-want.MonetaryMean) > 1e-12 {
		t.Fatalf("summary of 00004 = %+v, want %+v", c, want)
	}
	if got := publishedBGNBD.ExpectedPurchases(39, c); math.Abs(got-1.226) > 0.0005 {
		t.Errorf("E[Y(39) | 2, 30.43, 38.86] = %.4f, published 1.226", got)
	}
}

func indexOf(ids []string, id string) int {
	for i, v := range ids {
		if v == id {
			return i
		}
	}
	return -1
}

// bgReference evaluates the BG/NBD quantities by numerical integration over
// the dropout probability p, with λ integrated out in closed form:
//
//	G(s) = ∫ λ^x e^{−λs} Gamma(λ; r, α) dλ = Γ(r+x)/Γ(r) · α^r / (α+s)^(r+x)
//	L    = E_p[(1−p)^x G(T) + [x>0] p (1−p)^(x−1) G(t_x)]
//	P(alive, data) = E_p[(1−p)^x G(T)]
//	E[Y(t), data]  = E_p[(1−p)^x (G(T) − G(T+pt)) / p]
//
// (given λ, p and alive at T, E[Y(t)] = (1 − e^{−λpt})/p). It shares no code
// or closed form (hypergeometric function, Beta-function ratios) with the
// package.
type bgReference struct{ m clv.BGNBD }

func (ref bgReference) g(x, s float64) float64 {
	lg1, _ := math.Lgamma(ref.m.R + x)
	lg2, _ := math.Lgamma(ref.m.R)
	return math.Exp(lg1 - lg2 + ref.m.R*math.Log(ref.m.Alpha) - (ref.m.R+x)*math.Log(ref.m.Alpha+s))
}

// expectP returns E[h(p, 1−p)] for p ~ Beta(a, b) by tanh-sinh quadrature
// in p = σ(π sinh t), σ the logistic function, which handles the density's
// endpoint singularities for any a, b > 0 (and gives p and 1−p to full
// relative precision near both ends).
func (ref bgReference) expectP(h func(p, q float64) float64) float64 {
	const step, tMax = 1.0 / 64, 6.0
	a, b := ref.m.A, ref.m.B
	sum := 0.0
	for t := -tMax; t <= tMax; t += step {
		u := math.Pi * math.Sinh(t)
		p, q := 1/(1+math.Exp(-u)), 1/(1+math.Exp(u))
		// density · dp/dt = p^(a−1) q^(b−1)/B(a, b) · π cosh t · p q
		w := math.Exp(a*math.Log(p)+b*math.Log(q)-mathext.Lbeta(a, b)) * math.Pi * math.Cosh(t)
		sum += h(p, q) * w
	}
	return sum * step
}

func (ref bgReference) likelihood(c clv.Customer) float64 {
	x := c.Frequency
	gT, gtx := ref.g(x, c.T), ref.g(x, c.Recency)
	return ref.expectP(func(p, q float64) float64 {
		l := math.Pow(q, x) * gT
		if x > 0 {
			l += p * math.Pow(q, x-1) * gtx
		}
		return l
	})
}

func (ref bgReference) pAlive(c clv.Customer) float64 {
	gT := ref.g(c.Frequency, c.T)
	return ref.expectP(func(_, q float64) float64 { return math.Pow(q, c.Frequency) * gT }) / ref.likelihood(c)
}

func (ref bgReference) expected(t float64, c clv.Customer) float64 {
	x := c.Frequency
	gT := ref.g(x, c.T)
	num := ref.expectP(func(p, q float64) float64 {
		// G(T) − G(T+pt) = G(T)·(1 − (1 + pt/(α+T))^−(r+x)), without cancellation for small p.
		d := -math.Expm1(-(ref.m.R + x) * math.Log1p(p*t/(ref.m.Alpha+c.T)))
		return math.Pow(q, x) * gT * d / p
	})
	return num / ref.likelihood(c)
}

func TestBGNBDAgreesWithNumericalIntegration(t *testing.T) {
	models := []clv.BGNBD{
		publishedBGNBD,
		{R: 1.5, Alpha: 10, A: 2.5, B: 4},
		{R: 0.5, Alpha: 0.8, A: 0.4, B: 1.3},
		{R: 0.3, Alpha: 5, A: 1, B: 2}, // a = 1: equation 10 is 0/0 there
		{R: 0.3, Alpha: 5, A: 1 + 3e-7, B: 2},
		{R: 0.5, Alpha: 2, A: 0.3, B: 0.5}, // a+b < 1: the series' c is ≤ 0 for x = 0
		{R: 0.5, Alpha: 3, A: 0.5, B: 2},   // r = a: c−a−b is an integer
		{R: 4, Alpha: 0.5, A: 30, B: 60},   // large shapes
	}
	customers := []clv.Customer{
		{Frequency: 0, Recency: 0, T: 38.86},
		{Frequency: 0, Recency: 0, T: 1},
		{Frequency: 1, Recency: 2, T: 30},
		{Frequency: 2, Recency: 30.43, T: 38.86},
		{Frequency: 5, Recency: 38, T: 38.86},
		{Frequency: 5, Recency: 3, T: 38.86},
		{Frequency: 20, Recency: 50, T: 52},
	}
	for _, m := range models {
		ref := bgReference{m}
		for _, c := range customers {
			ll := m.LogLikelihood([]clv.Customer{c})
			if want := math.Log(ref.likelihood(c)); math.Abs(ll-want) > 1e-8*math.Max(1, math.Abs(want)) {
				t.Errorf("%v %+v: LogLikelihood %.12g, integral %.12g", m, c, ll, want)
			}
			if got, want := m.PAlive(c), ref.pAlive(c); math.Abs(got-want) > 1e-8 {
				t.Errorf("%v %+v: PAlive %.12g, integral %.12g", m, c, got, want)
			}
			for _, h := range []float64{0.5, 13, 39, 520, 1e5} { // 1e5: beyond the series
				if got, want := m.ExpectedPurchases(h, c), ref.expected(h, c); math.Abs(got-want) > 1e-7*math.Max(1, want) {
					t.Errorf("%v %+v: ExpectedPurchases(%g) %.12g, integral %.12g", m, c, h, got, want)
				}
			}
		}
	}
}

// Equation 10 of the paper as printed, with gonum's (Cephes) hypergeometric
// function: an independent implementation for parameters where Cephes is
// reliable (c−a−b not an integer).
func TestExpectedPurchasesAgreesWithPaperFormula(t *testing.T) {
	for _, m := range []clv.BGNBD{publishedBGNBD, {R: 1.3, Alpha: 7, A: 2.2, B: 0.7}, {R: 0.2, Alpha: 0.5, A: 0.45, B: 5}} {
		for _, c := range []clv.Customer{{T: 20}, {Frequency: 1, Recency: 5, T: 20}, {Frequency: 7, Recency: 19, T: 20}, {Frequency: 15, Recency: 60, T: 70}} {
			for _, h := range []float64{1, 39, 1e3, 1e5, 1e7} {
				x := c.Frequency
				z := h / (m.Alpha + c.T + h)
				paper := (m.A + m.B + x - 1) / (m.A - 1) *
					(1 - math.Pow((m.Alpha+c.T)/(m.Alpha+c.T+h), m.R+x)*mathext.Hypergeo(m.R+x, m.B+x, m.A+m.B+x-1, z)) *
					m.PAlive(c)
				if got := m.ExpectedPurchases(h, c); math.Abs(got-paper) > 1e-8*math.Max(1, paper) {
					t.Errorf("%v %+v: ExpectedPurchases(%g) = %.12g, equation 10 gives %.12g", m, c, h, got, paper)
				}
			}
		}
	}
}

// Extreme but valid inputs give finite, non-negative answers, quickly.
func TestBGNBDExtremeInputs(t *testing.T) {
	models := []clv.BGNBD{
		publishedBGNBD,
		{R: 3, Alpha: 0.01, A: 5, B: 0.01},
		{R: 1e-5, Alpha: 1e5, A: 1e-4, B: 1e4},
		{R: 0.5, Alpha: 1, A: 0.5, B: 1}, // r = a
		{R: 1e3, Alpha: 1e3, A: 1e3, B: 1e3},
	}
	customers := []clv.Customer{
		{Frequency: 1e3, Recency: 10, T: 10},
		{Frequency: 1e6, Recency: 5, T: 10},
		{Frequency: 1e12, Recency: 1e9, T: 1e9},
		{Frequency: 1e300, Recency: 1, T: 1},
		{Frequency: 3, Recency: 1e300, T: 1e300},
		{T: 1e300},
		{Frequency: 1, Recency: 0, T: 0},
		{T: 0},
	}
	for _, m := range models {
		for _, c := range customers {
			if pa := m.PAlive(c); !(pa >= 0 && pa <= 1) {
				t.Errorf("%v %+v: PAlive = %v", m, c, pa)
			}
			for _, h := range []float64{1e-9, 13, 1e6, 1e300} {
				// With 1e300 purchases and a 1e300 horizon the answer may
				// overflow to +Inf; otherwise it is finite.
				e := m.ExpectedPurchases(h, c)
				if !(e >= 0) || (math.IsInf(e, 1) && h*c.Frequency < 1e308) {
					t.Errorf("%v %+v: ExpectedPurchases(%g) = %v, want finite and ≥ 0", m, c, h, e)
				}
			}
		}
	}
}

func TestBGNBDPredictionProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		m := clv.BGNBD{
			R: math.Exp(rng.Float64()*6 - 3), Alpha: math.Exp(rng.Float64()*6 - 2),
			A: math.Exp(rng.Float64()*4 - 2), B: math.Exp(rng.Float64()*4 - 2),
		}
		T := rng.Float64() * 100
		c := clv.Customer{Frequency: float64(rng.IntN(200)), T: T}
		if c.Frequency > 0 {
			c.Recency = rng.Float64() * T
		}
		pa := m.PAlive(c)
		if !(pa >= 0 && pa <= 1) {
			t.Fatalf("%v %+v: PAlive = %v, want within [0, 1]", m, c, pa)
		}
		prev := 0.0
		for _, h := range []float64{0, 1, 10, 100, 1000} {
			e := m.ExpectedPurchases(h, c)
			if !(e >= prev-1e-9*math.Max(1, prev)) || math.IsInf(e, 0) {
				t.Fatalf("%v %+v: ExpectedPurchases(%g) = %v after %v; want finite and non-decreasing", m, c, h, e, prev)
			}
			prev = e
		}
		// A later last purchase means the customer is more likely alive.
		if c.Frequency > 0 && c.Recency < T {
			later := c
			later.Recency = (c.Recency + T) / 2
			if m.PAlive(later) < pa-1e-12 {
				t.Fatalf("%v: PAlive(%+v) = %v < PAlive(%+v) = %v", m, later, m.PAlive(later), c, pa)
			}
		}
	}
}

// simulateBGNBD draws n customers of age T from the BG/NBD process.
func simulateBGNBD(m clv.BGNBD, n int, T float64, rng *rand.Rand) []clv.Customer {
	lambda := distuv.Gamma{Alpha: m.R, Beta: m.Alpha, Src: rng}
	drop := distuv.Beta{Alpha: m.A, Beta: m.B, Src: rng}
	cs := make([]clv.Customer, n)
	for i := range cs {
		l, p := lambda.Rand(), drop.Rand()
		c := clv.Customer{T: T}
		for t := rng.ExpFloat64() / l; t <= T; t += rng.ExpFloat64() / l {
			c.Frequency++
			c.Recency = t
			if rng.Float64() < p { // drops out after this purchase
				break
			}
		}
		cs[i] = c
	}
	return cs
}

func TestFitBGNBDRecoversSimulatedParameters(t *testing.T) {
	truth := clv.BGNBD{R: 0.8, Alpha: 6, A: 1.2, B: 3}
	cs := simulateBGNBD(truth, 20000, 52, rand.New(rand.NewPCG(7, 11)))
	m, res, err := clv.FitBGNBD(cs, clv.FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged {
		t.Errorf("not converged: %+v", res)
	}
	t.Logf("truth %v, fit %v", truth, m)
	if ll, llTruth := res.LogLikelihood, truth.LogLikelihood(cs); ll < llTruth {
		t.Errorf("fitted LL %.3f below the LL at the true parameters %.3f", ll, llTruth)
	}
	// r and α are pinned down by the purchase counts; a and b less so.
	for _, p := range []struct {
		name           string
		got, want, tol float64
	}{
		{"r", m.R, truth.R, 0.1}, {"alpha", m.Alpha, truth.Alpha, 0.1},
		{"a", m.A, truth.A, 0.25}, {"b", m.B, truth.B, 0.3},
	} {
		if relErr(p.got, p.want) > p.tol {
			t.Errorf("%s = %.3f, true %.3f (more than %.0f%% off)", p.name, p.got, p.want, 100*p.tol)
		}
	}
}

// A fit cut short by MaxEvaluations is returned, valid but not converged.
func TestFitBGNBDEvaluationLimit(t *testing.T) {
	s := loadCDNOW(t, data.CDNOWSample)
	m, res, err := clv.FitBGNBD(s.customers, clv.FitOptions{MaxEvaluations: 40})
	if err != nil {
		t.Fatal(err)
	}
	if res.Converged || res.Evaluations > 40 || m.Validate() != nil {
		t.Errorf("fit %v, %+v: want valid parameters, not converged, ≤ 40 evaluations", m, res)
	}
	if ll := m.LogLikelihood(s.customers); math.Abs(ll-res.LogLikelihood) > 1e-6 || !(ll < publishedBGNBDLogLik) {
		t.Errorf("LL %v (FitResult %v): want finite and below the optimum", ll, res.LogLikelihood)
	}
}

func TestFitBGNBDInvalidInput(t *testing.T) {
	ok := clv.Customer{Frequency: 1, Recency: 2, T: 3}
	for _, tc := range []struct {
		name  string
		cs    []clv.Customer
		opts  clv.FitOptions
		want  error
		index int // of the offending customer, for ErrInvalidInput
	}{
		{name: "nil", cs: nil, want: clv.ErrNoData},
		{name: "empty", cs: []clv.Customer{}, want: clv.ErrNoData},
		{name: "all zero frequencies", cs: []clv.Customer{{T: 1}, {T: 5}, {T: 39}}, want: clv.ErrNoData},
		{name: "NaN frequency", cs: []clv.Customer{ok, {Frequency: math.NaN(), T: 1}}, want: clv.ErrInvalidInput, index: 1},
		{name: "negative frequency", cs: []clv.Customer{{Frequency: -1, T: 1}}, want: clv.ErrInvalidInput},
		{name: "fractional frequency", cs: []clv.Customer{{Frequency: 1.5, Recency: 1, T: 2}}, want: clv.ErrInvalidInput},
		{name: "infinite T", cs: []clv.Customer{{Frequency: 1, Recency: 1, T: math.Inf(1)}}, want: clv.ErrInvalidInput},
		{name: "negative T", cs: []clv.Customer{{T: -1}}, want: clv.ErrInvalidInput},
		{name: "NaN recency", cs: []clv.Customer{ok, ok, {Frequency: 1, Recency: math.NaN(), T: 2}}, want: clv.ErrInvalidInput, index: 2},
		{name: "recency after T", cs: []clv.Customer{{Frequency: 1, Recency: 3, T: 2}}, want: clv.ErrInvalidInput},
		{name: "negative monetary", cs: []clv.Customer{{Frequency: 1, Recency: 1, T: 2, MonetaryMean: -3}}, want: clv.ErrInvalidInput},
		{name: "negative MaxEvaluations", cs: []clv.Customer{ok}, opts: clv.FitOptions{MaxEvaluations: -1}, want: clv.ErrInvalidInput, index: -1},
		{name: "NaN tolerance", cs: []clv.Customer{ok}, opts: clv.FitOptions{Tolerance: math.NaN()}, want: clv.ErrInvalidInput, index: -1},
		{name: "negative restarts", cs: []clv.Customer{ok}, opts: clv.FitOptions{Restarts: -2}, want: clv.ErrInvalidInput, index: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := clv.FitBGNBD(tc.cs, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ie *clv.InputError
			if errors.As(err, &ie) && ie.Index != tc.index {
				t.Errorf("InputError.Index = %d, want %d (%v)", ie.Index, tc.index, err)
			}
		})
	}
}

func TestFitBGNBDDegenerateButValidData(t *testing.T) {
	for _, tc := range []struct {
		name string
		cs   []clv.Customer
	}{
		{"single repeat customer", []clv.Customer{{Frequency: 1, Recency: 1, T: 1}}},
		{"everyone bought at T=0", []clv.Customer{{Frequency: 3, Recency: 0, T: 0}, {T: 0}}},
		{"huge frequency", []clv.Customer{{Frequency: 1e6, Recency: 10, T: 10}, {T: 10}}},
		{"huge ages", []clv.Customer{{Frequency: 2, Recency: 1e12, T: 1e13}, {T: 1e13}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, res, err := clv.FitBGNBD(tc.cs, clv.FitOptions{MaxEvaluations: 3000})
			if err != nil {
				if !errors.Is(err, clv.ErrFit) {
					t.Fatalf("err = %v, want nil or ErrFit", err)
				}
				return
			}
			if m.Validate() != nil || math.IsNaN(res.LogLikelihood) || math.IsInf(res.LogLikelihood, 0) {
				t.Fatalf("fit %v, %+v: want valid parameters and a finite LL", m, res)
			}
		})
	}
}

func TestBGNBDInvalidArgumentsGiveNaN(t *testing.T) {
	ok := clv.Customer{Frequency: 2, Recency: 3, T: 4}
	for _, tc := range []struct {
		name string
		m    clv.BGNBD
		c    clv.Customer
		t    float64
	}{
		{"zero model", clv.BGNBD{}, ok, 1},
		{"negative r", clv.BGNBD{R: -1, Alpha: 1, A: 1, B: 1}, ok, 1},
		{"NaN b", clv.BGNBD{R: 1, Alpha: 1, A: 1, B: math.NaN()}, ok, 1},
		{"Inf alpha", clv.BGNBD{R: 1, Alpha: math.Inf(1), A: 1, B: 1}, ok, 1},
		{"NaN customer", publishedBGNBD, clv.Customer{Frequency: math.NaN()}, 1},
		{"recency after T", publishedBGNBD, clv.Customer{Frequency: 1, Recency: 5, T: 4}, 1},
	} {
		if v := tc.m.PAlive(tc.c); !math.IsNaN(v) {
			t.Errorf("%s: PAlive = %v, want NaN", tc.name, v)
		}
		if v := tc.m.ExpectedPurchases(tc.t, tc.c); !math.IsNaN(v) {
			t.Errorf("%s: ExpectedPurchases = %v, want NaN", tc.name, v)
		}
		if v := tc.m.LogLikelihood([]clv.Customer{tc.c}); !math.IsNaN(v) {
			t.Errorf("%s: LogLikelihood = %v, want NaN", tc.name, v)
		}
	}
	for _, h := range []float64{-1, math.NaN(), math.Inf(1)} {
		if v := publishedBGNBD.ExpectedPurchases(h, ok); !math.IsNaN(v) {
			t.Errorf("ExpectedPurchases(%v) = %v, want NaN", h, v)
		}
	}
	if v := publishedBGNBD.ExpectedPurchases(0, ok); v != 0 {
		t.Errorf("ExpectedPurchases(0) = %v, want 0", v)
	}
}
