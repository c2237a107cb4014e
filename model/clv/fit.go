package clv

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// FitOptions tunes [FitBGNBD] and [FitGammaGamma]. The zero value is ready
// to use.
type FitOptions struct {
	// MaxEvaluations bounds the number of log-likelihood evaluations over the
	// whole fit. Default (0): 20000.
	MaxEvaluations int
	// Tolerance is the convergence threshold on the mean per-customer
	// negative log-likelihood: the optimiser stops when it improves by less
	// than Tolerance, and the fit has converged when a restart from the
	// optimum improves it by less than Tolerance too. Default (0): 1e-10.
	Tolerance float64
	// Restarts is the maximum number of times the simplex is rebuilt around
	// the current optimum, which guards against a prematurely collapsed
	// simplex. Default (0): 5.
	Restarts int
}

// Validate reports whether the options are usable.
func (o FitOptions) Validate() error {
	switch {
	case o.MaxEvaluations < 0:
		return inputErr(-1, "FitOptions.MaxEvaluations", "must be ≥ 0")
	case o.Tolerance < 0 || math.IsNaN(o.Tolerance) || math.IsInf(o.Tolerance, 1):
		return inputErr(-1, "FitOptions.Tolerance", "must be finite and ≥ 0")
	case o.Restarts < 0:
		return inputErr(-1, "FitOptions.Restarts", "must be ≥ 0")
	}
	return nil
}

func (o FitOptions) withDefaults() FitOptions {
	if o.MaxEvaluations == 0 {
		o.MaxEvaluations = 20000
	}
	if o.Tolerance == 0 {
		o.Tolerance = 1e-10
	}
	if o.Restarts == 0 {
		o.Restarts = 5
	}
	return o
}

// FitResult describes a maximum-likelihood fit.
type FitResult struct {
	// LogLikelihood is the total log-likelihood of the customers used, at
	// the fitted parameters.
	LogLikelihood float64
	// N is the number of customers the fit used.
	N int
	// Iterations is the number of optimiser iterations, over all restarts.
	Iterations int
	// Evaluations is the number of log-likelihood evaluations.
	Evaluations int
	// Converged reports whether the optimum was confirmed by a restart
	// within FitOptions.MaxEvaluations.
	Converged bool
}

// maxLogParam bounds the log-parameters explored by the optimiser; beyond
// it the objective is +Inf. e^±30 is far outside any sensible parameter.
const maxLogParam = 30

// minimizeLog minimises f over log-parameters starting at x0 with Nelder-Mead
// and restarts. f must return +Inf (never NaN) where it is undefined.
func minimizeLog(f func(x []float64) float64, x0 []float64, o FitOptions) ([]float64, float64, FitResult, error) {
	obj := func(x []float64) float64 {
		for _, v := range x {
			if !(math.Abs(v) <= maxLogParam) {
				return math.Inf(1)
			}
		}
		y := f(x)
		if math.IsNaN(y) {
			return math.Inf(1)
		}
		return y
	}
	x := append([]float64(nil), x0...)
	fx := obj(x)
	if math.IsInf(fx, 0) {
		return nil, 0, FitResult{}, fmt.Errorf("%w: log-likelihood is not finite at the starting point", ErrFit)
	}
	var res FitResult
	simplex := 0.5 // the first simplex spans a wide region, later ones are local
	for round := 0; round <= o.Restarts; round++ {
		left := o.MaxEvaluations - res.Evaluations
		if left <= 0 {
			break
		}
		settings := &optimize.Settings{
			FuncEvaluations: left,
			Converger: &optimize.FunctionConverge{
				Absolute:   o.Tolerance,
				Iterations: 20 * len(x),
			},
		}
		r, err := optimize.Minimize(optimize.Problem{Func: obj}, x, settings, &optimize.NelderMead{SimplexSize: simplex})
		if r == nil {
			return nil, 0, res, fmt.Errorf("%w: %v", ErrFit, err)
		}
		res.Iterations += r.MajorIterations
		res.Evaluations += r.FuncEvaluations
		improved := fx - r.F
		if r.F < fx {
			copy(x, r.X)
			fx = r.F
		}
		if round > 0 && improved < o.Tolerance && r.Status != optimize.FunctionEvaluationLimit {
			res.Converged = true
			break
		}
		simplex = 0.05
	}
	if math.IsInf(fx, 0) || math.IsNaN(fx) {
		return nil, 0, res, fmt.Errorf("%w: log-likelihood is not finite at the optimum", ErrFit)
	}
	return x, fx, res, nil
}
