package features

import (
	"math"
	"time"
)

// Vector holds the numeric features, indexed by ID.
type Vector [NumFeatures]float64

// Get returns the named feature.
func (v *Vector) Get(name string) (float64, bool) {
	id, ok := Lookup(name)
	if !ok {
		return 0, false
	}
	return v[id], true
}

// Map returns the features by name.
func (v *Vector) Map() map[string]float64 {
	m := make(map[string]float64, NumFeatures)
	for i, d := range Defs {
		m[d.Name] = v[i]
	}
	return m
}

// Affinity is one entry of a top-K affinity list.
type Affinity struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// Profile is a user's features evaluated at one time.
type Profile struct {
	At         time.Time
	Vector     Vector
	Affinities map[string][]Affinity // by dimension (Dims)
}

// Evaluate computes every feature at time at. Windowed and decayed features
// are exact for at ≥ the partition watermark at the last Apply (always true
// for "now" and for the largest event time of a replay).
func (s *State) Evaluate(at time.Time, cfg *Config) Profile {
	p := Profile{At: at}
	s.evaluate(at.UnixMilli(), cfg, &p.Vector)
	p.Affinities = make(map[string][]Affinity, len(Dims))
	for i, d := range Dims {
		if top := s.Aff[i].top(at.UnixMilli(), cfg); len(top) > 0 {
			p.Affinities[d] = top
		}
	}
	return p
}

// EvaluateVector computes only the numeric features (no allocation).
func (s *State) EvaluateVector(at time.Time, cfg *Config, v *Vector) {
	s.evaluate(at.UnixMilli(), cfg, v)
}

func (s *State) evaluate(t int64, cfg *Config, v *Vector) {
	*v = Vector{}
	v[ViewsTotal] = float64(s.Views)
	v[CartsTotal] = float64(s.Carts)
	v[RemovesTotal] = float64(s.Removes)
	v[PurchasesTotal] = float64(s.Purchases)
	v[UnitsTotal] = float64(s.Units)
	v[RevenueTotal] = micros(s.RevenueMicros)
	v[SearchesTotal] = float64(s.Searches)
	v[ReviewsTotal] = float64(s.Reviews)
	v[FirstSeen] = float64(s.FirstSeenMs / 1000)
	v[LastSeen] = float64(s.LastSeenMs / 1000)
	v[LastPurchaseAt] = float64(s.LastPurchaseMs / 1000)

	var cartLive, abandonLive int64
	for _, x := range s.Sessions {
		if x.Flags&flagCart != 0 {
			cartLive++
			if x.Flags&flagPurchase == 0 {
				abandonLive++
			}
		}
	}
	v[SessionsTotal] = float64(s.SessionsDone + int64(len(s.Sessions)))
	v[CartSessions] = float64(s.CartSessionsDone + cartLive)
	v[AbandonedCartSessions] = float64(s.AbandonDone + abandonLive)
	v[CartAbandonRate] = ratio(v[AbandonedCartSessions], v[CartSessions])
	v[DistinctItems] = float64(len(s.Items))

	v[Views1h] = float64(s.Views1m.sum(t/bucket1h, windowBuckets))
	v[Views24h] = float64(s.Views24m.sum(t/bucket24h, windowBuckets))
	v[Views7d] = float64(s.Views168m.sum(t/bucket7d, windowBuckets))
	v[Carts24h] = float64(s.Carts24m.sum(t/bucket24h, windowBuckets))
	v[Purchases30d] = float64(s.Purchases12h.sum(t/bucket30d, windowBuckets))
	v[Revenue30d] = micros(s.Revenue12h.sum(t/bucket30d, windowBuckets))

	v[Activity1h] = s.Activity[0].at(t, activityHalfLives[0])
	v[Activity1d] = s.Activity[1].at(t, activityHalfLives[1])
	v[Activity7d] = s.Activity[2].at(t, activityHalfLives[2])

	v[ViewToCartRate] = math.Min(1, ratio(float64(s.Carts), float64(s.Views)))
	v[CartToPurchaseRate] = math.Min(1, ratio(float64(s.Purchases), float64(s.Carts)))
	if s.ViewPriceN > 0 {
		v[AvgPriceViewed] = micros(s.ViewPriceMicros) / float64(s.ViewPriceN)
	}
	if s.Units > 0 {
		v[AvgPriceBought] = micros(s.RevenueMicros) / float64(s.Units)
	}
	if v[AvgPriceViewed] > 0 && s.Units > 0 {
		v[PriceSensitivity] = math.Max(-1, math.Min(1, 1-v[AvgPriceBought]/v[AvgPriceViewed]))
	}

	const day = float64(24 * time.Hour / time.Millisecond)
	if s.LastSeenMs > 0 {
		v[DaysSinceLastSeen] = float64(t-s.LastSeenMs) / day
		v[TenureDays] = float64(t-s.FirstSeenMs) / day
	}
	v[DaysSinceLastPurchase] = -1
	if s.LastPurchaseMs > 0 {
		d := float64(t-s.LastPurchaseMs) / day
		v[DaysSinceLastPurchase] = d
		v[RFMRecency] = recencyScore(d, cfg.RFM.RecencyDays)
		v[RFMFrequency] = ascScore(float64(s.Purchases), cfg.RFM.Frequency)
		v[RFMMonetary] = ascScore(v[RevenueTotal], cfg.RFM.Monetary)
		if s.RevenueMicros == 0 {
			v[RFMMonetary] = 0
		}
	}
	v[RFMScore] = 100*v[RFMRecency] + 10*v[RFMFrequency] + v[RFMMonetary]

	if s.PurchaseDays > 0 {
		const weekDays = 7.0
		v[PurchaseDays] = float64(s.PurchaseDays)
		x := s.PurchaseDays - 1
		v[RepeatTransactions] = float64(x)
		v[RecencyWeeks] = float64(s.LastPurchaseDay-s.FirstPurchaseDay) / weekDays
		// T counts whole days from the first purchase day to T's day, the
		// CDNOW convention (calibration ends on a day boundary).
		v[AgeWeeks] = math.Max(0, float64(t-s.FirstPurchaseDay*dayMs)/float64(dayMs)/weekDays)
		if x > 0 {
			v[RepeatAvgValue] = micros(s.RevenueMicros-s.FirstDayRevenueMicros) / float64(x)
		}
	}
}

func micros(m int64) float64 { return float64(m) / 1e6 }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// recencyScore: ≤th[0] days → 5, ≤th[1] → 4, ≤th[2] → 3, ≤th[3] → 2, else 1.
func recencyScore(days float64, th []float64) float64 {
	for i, x := range th {
		if days <= x {
			return float64(5 - i)
		}
	}
	return 1
}

// ascScore: ≥th[3] → 5, ≥th[2] → 4, ≥th[1] → 3, ≥th[0] → 2, >0 → 1, else 0.
func ascScore(x float64, th []float64) float64 {
	if x <= 0 {
		return 0
	}
	for i := len(th) - 1; i >= 0; i-- {
		if x >= th[i] {
			return float64(i + 2)
		}
	}
	return 1
}

// top returns the K strongest entries with weights decayed to t.
func (a *affinity) top(t int64, cfg *Config) []Affinity {
	if len(a.Entries) == 0 {
		return nil
	}
	h := float64(cfg.AffinityHalfLife / time.Millisecond)
	scale := math.Exp2(-float64(t-a.Base) / h)
	var scratch [maxInsertionTopK]int32
	idx := a.topIndexes(scratch[:0], cfg.TopK)
	out := make([]Affinity, len(idx))
	for i, x := range idx {
		e := a.Entries[x]
		out[i] = Affinity{Name: e.Name, Score: e.W * scale}
	}
	return out
}

// AffinityBuckets returns, for dimension i of Dims, the hashed buckets and
// their weights decayed to t, for use as sparse model inputs.
func (s *State) AffinityBuckets(dim int, at time.Time, cfg *Config) (buckets []uint32, weights []float64) {
	a := &s.Aff[dim]
	if len(a.Entries) == 0 {
		return nil, nil
	}
	h := float64(cfg.AffinityHalfLife / time.Millisecond)
	scale := math.Exp2(-float64(at.UnixMilli()-a.Base) / h)
	buckets = make([]uint32, len(a.Entries))
	weights = make([]float64, len(a.Entries))
	for i, e := range a.Entries {
		buckets[i], weights[i] = e.Bucket, e.W*scale
	}
	return buckets, weights
}
