package scorer

import (
	"math"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/clv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/sink/segment"
)

// Score slots, in segment.ScoreNames order.
const (
	sPurchase = iota
	sRepeat
	sChurn
	sPAlive
	sExpected
	sCLV
	numScores
)

var scoreNames = func() [numScores]string {
	var out [numScores]string
	copy(out[:], segment.ScoreNames())
	return out
}()

func scoreIndex(name string) int {
	for i, n := range scoreNames {
		if n == name {
			return i
		}
	}
	return -1
}

// scores holds one value per score slot; NaN is missing.
type scores [numScores]float64

// horizonWeeks is the baselines' horizon: 90 days, the derived inputs'.
const horizonWeeks = inputs.DerivedHorizonWeeks

// baselines fills the BG/NBD and Gamma-Gamma slots from v and the
// champion's fitted parameters (NaN for a user who never bought, or
// without parameters). It reads the customer summary with
// inputs.CustomerOf, as the trainer and the network's derived inputs do.
func baselines(p *registry.CLVParams, v *features.Vector, out *scores) {
	out[sPAlive], out[sExpected], out[sCLV] = math.NaN(), math.NaN(), math.NaN()
	if p == nil {
		return
	}
	c, ok := inputs.CustomerOfVector(v)
	if !ok {
		return
	}
	out[sPAlive] = p.BGNBD.PAlive(c)
	out[sExpected] = p.BGNBD.ExpectedPurchases(horizonWeeks, c)
	if p.GammaGamma != nil {
		out[sCLV] = clv.CLV(p.BGNBD, *p.GammaGamma, c, horizonWeeks, 0)
	}
}

// fillScores fills every slot of out: the network's head probabilities
// net (NaN: unknown), churn as the complement of repeat, and the
// baselines on v with the champion's parameters p (nil: none).
func fillScores(net [numHeads]float64, p *registry.CLVParams, v *features.Vector, out *scores) {
	out[sPurchase], out[sRepeat] = net[headPurchase], net[headRepeat]
	out[sChurn] = 1 - out[sRepeat] // NaN stays NaN
	baselines(p, v, out)
}

// Windowed features and their span (window plus one bucket): once that
// much event time has passed without an event they are exactly zero.
var windows = [...]struct {
	id   features.ID
	span int64
}{
	{features.Views1h, int64(61 * time.Minute / time.Millisecond)},
	{features.Views24h, int64((24*time.Hour + 24*time.Minute) / time.Millisecond)},
	{features.Views7d, int64((7*24*time.Hour + 168*time.Minute) / time.Millisecond)},
	{features.Carts24h, int64((24*time.Hour + 24*time.Minute) / time.Millisecond)},
	{features.Purchases30d, int64((30*24*time.Hour + 12*time.Hour) / time.Millisecond)},
	{features.Revenue30d, int64((30*24*time.Hour + 12*time.Hour) / time.Millisecond)},
}

// Decayed activity features and their half-lives.
var decays = [...]struct {
	id features.ID
	hl float64 // ms
}{
	{features.Activity1h, float64(time.Hour / time.Millisecond)},
	{features.Activity1d, float64(24 * time.Hour / time.Millisecond)},
	{features.Activity7d, float64(7 * 24 * time.Hour / time.Millisecond)},
}

// recencyDays are features' default RFM recency thresholds.
var recencyDays = features.Config{}.WithDefaults().RFM.RecencyDays

// project returns v, the features of a snapshot taken at fromMs, as they
// are at toMs ≥ fromMs if no event happened meanwhile: clocks
// (days_since_*, tenure_days, age_weeks) advance, activity decays with its
// half-life, windowed counts are zero once their window has passed (held
// before), and rfm_recency and rfm_score follow days_since_last_purchase.
// Totals and rates do not change without events.
func project(v features.Vector, fromMs, toMs int64) features.Vector {
	dt := toMs - fromMs
	if dt <= 0 {
		return v
	}
	days := float64(dt) / float64(dayMs)
	if v[features.LastSeen] > 0 {
		v[features.DaysSinceLastSeen] += days
		v[features.TenureDays] += days
	}
	if v[features.LastPurchaseAt] > 0 {
		v[features.DaysSinceLastPurchase] += days
		r := 1.0
		for i, th := range recencyDays {
			if v[features.DaysSinceLastPurchase] <= th {
				r = float64(5 - i)
				break
			}
		}
		v[features.RFMRecency] = r
		v[features.RFMScore] = 100*r + 10*v[features.RFMFrequency] + v[features.RFMMonetary]
	}
	if v[features.PurchaseDays] >= 1 {
		v[features.AgeWeeks] += days / 7
	}
	for _, w := range windows {
		if dt >= w.span {
			v[w.id] = 0
		}
	}
	for _, d := range decays {
		v[d.id] *= math.Exp2(-float64(dt) / d.hl)
	}
	return v
}

// input is a segment.Input over a feature vector, affinity names, scores
// and deciles.
type input struct {
	vec     *features.Vector
	tokens  *[len(features.Dims)][]string
	sc      *scores
	deciles segment.Deciles
}

func (in *input) Value(name string) (float64, bool) {
	if id, ok := features.Lookup(name); ok {
		return in.vec[id], true
	}
	if i := scoreIndex(name); i >= 0 && !math.IsNaN(in.sc[i]) {
		return in.sc[i], true
	}
	return 0, false
}

func (in *input) Top(dim string) []string {
	for i, d := range features.Dims {
		if d == dim {
			return in.tokens[i]
		}
	}
	return nil
}

func (in *input) Decile(score string) (int, bool) {
	i := scoreIndex(score)
	if i < 0 || math.IsNaN(in.sc[i]) || in.deciles == nil {
		return 0, false
	}
	return in.deciles.Decile(score, in.sc[i])
}
