package clv_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/model/clv"
)

// Published Gamma-Gamma fit on the 946 repeat buyers of the CDNOW sample,
// using the mean value of their calibration-period repeat transactions
// (Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary Value").
var publishedGG = clv.GammaGamma{P: 6.25, Q: 3.74, V: 15.44}

func TestFitGammaGammaReproducesPublishedCDNOWFit(t *testing.T) {
	s := loadCDNOW(t, data.CDNOWSample)
	m, res, err := clv.FitGammaGamma(s.customers, clv.FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fit %v, LL %.4f over %d customers, %d evaluations", m, res.LogLikelihood, res.N, res.Evaluations)
	if !res.Converged || res.N != 946 {
		t.Errorf("FitResult %+v: want converged with N = 946", res)
	}
	for _, p := range []struct {
		name      string
		got, want float64
	}{{"p", m.P, publishedGG.P}, {"q", m.Q, publishedGG.Q}, {"v", m.V, publishedGG.V}} {
		if relErr(p.got, p.want) > 0.01 {
			t.Errorf("%s = %.4f, published %.2f (more than 1%% off)", p.name, p.got, p.want)
		}
	}
	if ll := m.LogLikelihood(s.customers); math.Abs(ll-res.LogLikelihood) > 1e-6 {
		t.Errorf("LogLikelihood = %.6f, FitResult says %.6f", ll, res.LogLikelihood)
	}
	for i := range 3 {
		for _, f := range []float64{0.99, 1.01} {
			q := [3]float64{m.P, m.Q, m.V}
			q[i] *= f
			pm := clv.GammaGamma{P: q[0], Q: q[1], V: q[2]}
			if ll := pm.LogLikelihood(s.customers); ll > res.LogLikelihood {
				t.Errorf("%v has LL %.6f > fitted %.6f", pm, ll, res.LogLikelihood)
			}
		}
	}
}

// ExpectedSpend is the posterior mean of p/ν with ν | data ~
// Gamma(q + px, γ + x·m̄). The reference averages p/ν over a fine quadrature of
// that posterior, written from the model's definition rather than the closed form.
func TestExpectedSpendMatchesPosteriorMean(t *testing.T) {
	m := publishedGG
	for _, c := range []clv.Customer{
		{Frequency: 1, Recency: 1, T: 2, MonetaryMean: 10},
		{Frequency: 3, Recency: 1, T: 2, MonetaryMean: 35.5},
		{Frequency: 20, Recency: 1, T: 2, MonetaryMean: 100},
	} {
		shape, rate := m.Q+m.P*c.Frequency, m.V+c.Frequency*c.MonetaryMean
		// ∫ (p/ν) f(ν) dν over ν = e^u, trapezoid on a wide, fine grid.
		var num, den float64
		mode := math.Log(shape / rate)
		for u := mode - 12; u <= mode+12; u += 1e-3 {
			nu := math.Exp(u)
			w := math.Exp(shape*u - rate*nu - (shape*mode - rate*math.Exp(mode))) // ν^shape e^{−rate ν}, dν = ν du
			num += w * m.P / nu
			den += w
		}
		want := num / den
		if got := m.ExpectedSpend(c); relErr(got, want) > 1e-9 {
			t.Errorf("%+v: ExpectedSpend %.10g, posterior mean %.10g", c, got, want)
		}
	}
	// Without repeat purchases it is the population mean pγ/(q−1), whatever MonetaryMean says.
	if got, want := m.ExpectedSpend(clv.Customer{T: 3}), m.P*m.V/(m.Q-1); relErr(got, want) > 1e-12 {
		t.Errorf("ExpectedSpend(new customer) = %v, want %v", got, want)
	}
	// Shrinkage: the estimate lies between the population mean and the customer's own mean.
	pop := m.P * m.V / (m.Q - 1)
	for _, mean := range []float64{1, 20, 500} {
		got := m.ExpectedSpend(clv.Customer{Frequency: 4, Recency: 1, T: 1, MonetaryMean: mean})
		if lo, hi := math.Min(pop, mean), math.Max(pop, mean); got < lo || got > hi {
			t.Errorf("ExpectedSpend with mean %v = %v, not between %v and %v", mean, got, lo, hi)
		}
	}
}

func TestFitGammaGammaRecoversSimulatedParameters(t *testing.T) {
	truth := clv.GammaGamma{P: 4, Q: 3, V: 20}
	rng := rand.New(rand.NewPCG(3, 5))
	nu := distuv.Gamma{Alpha: truth.Q, Beta: truth.V, Src: rng}
	cs := make([]clv.Customer, 20000)
	for i := range cs {
		x := 1 + rng.IntN(8)
		z := distuv.Gamma{Alpha: truth.P, Beta: nu.Rand(), Src: rng}
		sum := 0.0
		for range x {
			sum += z.Rand()
		}
		cs[i] = clv.Customer{Frequency: float64(x), Recency: 1, T: 1, MonetaryMean: sum / float64(x)}
	}
	m, res, err := clv.FitGammaGamma(cs, clv.FitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("truth %v, fit %v", truth, m)
	if !res.Converged {
		t.Errorf("not converged: %+v", res)
	}
	if res.LogLikelihood < truth.LogLikelihood(cs) {
		t.Errorf("fitted LL %.3f below the LL at the true parameters %.3f", res.LogLikelihood, truth.LogLikelihood(cs))
	}
	// p and v trade off against each other; their combination in the
	// population mean transaction value pv/(q−1) is pinned down more tightly.
	for _, p := range []struct {
		name           string
		got, want, tol float64
	}{
		{"p", m.P, truth.P, 0.15}, {"q", m.Q, truth.Q, 0.15}, {"v", m.V, truth.V, 0.15},
		{"pv/(q−1)", m.P * m.V / (m.Q - 1), truth.P * truth.V / (truth.Q - 1), 0.03},
	} {
		if relErr(p.got, p.want) > p.tol {
			t.Errorf("%s = %.3f, true %.3f (more than %.0f%% off)", p.name, p.got, p.want, 100*p.tol)
		}
	}
}

func TestFitGammaGammaInvalidInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		cs   []clv.Customer
		want error
	}{
		{"nil", nil, clv.ErrNoData},
		{"no repeat buyers", []clv.Customer{{T: 1}, {T: 2, MonetaryMean: 5}}, clv.ErrNoData},
		{"only zero-value repeat buyers", []clv.Customer{{Frequency: 2, Recency: 1, T: 2}}, clv.ErrNoData},
		{"NaN monetary", []clv.Customer{{Frequency: 1, Recency: 1, T: 2, MonetaryMean: math.NaN()}}, clv.ErrInvalidInput},
		{"infinite monetary", []clv.Customer{{Frequency: 1, Recency: 1, T: 2, MonetaryMean: math.Inf(1)}}, clv.ErrInvalidInput},
		{"negative monetary", []clv.Customer{{Frequency: 1, Recency: 1, T: 2, MonetaryMean: -1}}, clv.ErrInvalidInput},
		{"negative frequency", []clv.Customer{{Frequency: -1, T: 2, MonetaryMean: 1}}, clv.ErrInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := clv.FitGammaGamma(tc.cs, clv.FitOptions{}); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestGammaGammaInvalidArgumentsGiveNaN(t *testing.T) {
	ok := clv.Customer{Frequency: 2, Recency: 1, T: 2, MonetaryMean: 10}
	for _, tc := range []struct {
		name string
		m    clv.GammaGamma
		c    clv.Customer
	}{
		{"zero model", clv.GammaGamma{}, ok},
		{"NaN p", clv.GammaGamma{P: math.NaN(), Q: 2, V: 1}, ok},
		{"invalid customer", publishedGG, clv.Customer{Frequency: 1, MonetaryMean: math.NaN()}},
		{"no population mean (q ≤ 1) for a new customer", clv.GammaGamma{P: 1, Q: 0.5, V: 1}, clv.Customer{T: 1}},
	} {
		if v := tc.m.ExpectedSpend(tc.c); !math.IsNaN(v) {
			t.Errorf("%s: ExpectedSpend = %v, want NaN", tc.name, v)
		}
	}
}

func TestCLV(t *testing.T) {
	bg, gg := publishedBGNBD, publishedGG
	c := clv.Customer{Frequency: 2, Recency: 30.43, T: 38.86, MonetaryMean: 22.35}
	spend := gg.ExpectedSpend(c)
	undiscounted := clv.CLV(bg, gg, c, 52, 0)
	if want := spend * bg.ExpectedPurchases(52, c); relErr(undiscounted, want) > 1e-12 {
		t.Errorf("undiscounted CLV = %v, want spend × E[Y(52)] = %v", undiscounted, want)
	}
	// Discounted: period-by-period increments, discounted at period ends.
	const d = 0.01
	want := 0.0
	for k := 1; k <= 52; k++ {
		inc := bg.ExpectedPurchases(float64(k), c) - bg.ExpectedPurchases(float64(k-1), c)
		want += spend * inc / math.Pow(1+d, float64(k))
	}
	if got := clv.CLV(bg, gg, c, 52, d); relErr(got, want) > 1e-12 {
		t.Errorf("CLV(52, 1%%) = %v, want %v", got, want)
	}
	if got := clv.CLV(bg, gg, c, 52, d); !(got < undiscounted) {
		t.Errorf("discounted CLV %v not below undiscounted %v", got, undiscounted)
	}
	if got := clv.CLV(bg, gg, c, 52, 1e-12); relErr(got, undiscounted) > 1e-9 {
		t.Errorf("CLV with a negligible discount = %v, want ≈ %v", got, undiscounted)
	}
	// A fractional horizon ends with a partial period.
	if got, whole := clv.CLV(bg, gg, c, 51.5, d), clv.CLV(bg, gg, c, 52, d); !(got < whole) || got <= clv.CLV(bg, gg, c, 51, d) {
		t.Errorf("CLV(51.5) = %v, want strictly between CLV(51) and CLV(52) = %v", got, whole)
	}
	for _, tc := range []struct {
		name       string
		bg         clv.BGNBD
		horizon, d float64
	}{
		{"invalid BG/NBD", clv.BGNBD{}, 52, 0},
		{"negative horizon", bg, -1, 0},
		{"NaN discount", bg, 52, math.NaN()},
		{"negative discount", bg, 52, -0.1},
		{"horizon too long to discount", bg, clv.MaxDiscountPeriods + 1, 0.01},
	} {
		if v := clv.CLV(tc.bg, gg, c, tc.horizon, tc.d); !math.IsNaN(v) {
			t.Errorf("%s: CLV = %v, want NaN", tc.name, v)
		}
	}
}
