package featurestest

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// Recompute returns every user's features at time at, computed from the
// events (any order). Events with a repeated event id are counted once, as
// the stream's de-duplication does; consent and identify events change no
// behavioural feature.
func Recompute(events []stream.Event, at time.Time, cfg features.Config) map[string]features.Profile {
	cfg = cfg.WithDefaults()
	byUser := map[string][]stream.Event{}
	seen := map[string]bool{}
	for _, ev := range events {
		if seen[ev.EventID] {
			continue
		}
		seen[ev.EventID] = true
		u := ev.ProfileKey()
		byUser[u] = append(byUser[u], ev)
	}
	out := make(map[string]features.Profile, len(byUser))
	for u, evs := range byUser {
		out[u] = user(evs, at, cfg)
	}
	return out
}

func user(evs []stream.Event, at time.Time, cfg features.Config) features.Profile {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].TS.Before(evs[j].TS) })
	T := at.UnixMilli()
	var v features.Vector
	var viewPrice, revenue int64
	var viewPriced int64
	items := map[string]bool{}
	type tw struct {
		w    float64
		name string
	}
	aff := make([]map[string]float64, len(features.Dims))
	for i := range aff {
		aff[i] = map[string]float64{}
	}
	var bySession = map[string][]stream.Event{}
	var noSession []stream.Event
	halfLives := []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
	inWindow := func(t time.Time, width time.Duration) bool {
		w := width.Milliseconds()
		b, bt := t.UnixMilli()/w, T/w
		return b > bt-60 && b <= bt
	}
	decay := func(t time.Time, h time.Duration) float64 {
		return math.Exp2(-float64(T-t.UnixMilli()) / float64(h.Milliseconds()))
	}
	credit := func(ev stream.Event, w float64) {
		if ev.Category != "" {
			aff[0][ev.Category] += w * decay(ev.TS, cfg.AffinityHalfLife)
			root, _, _ := strings.Cut(ev.Category, ".")
			aff[1][root] += w * decay(ev.TS, cfg.AffinityHalfLife)
		}
		if ev.Brand != "" {
			aff[2][ev.Brand] += w * decay(ev.TS, cfg.AffinityHalfLife)
		}
	}
	var first, last, lastPurchase int64
	dayRevenue := map[int64]int64{} // UTC day → purchase revenue micros
	for _, ev := range evs {
		if ev.Type == stream.TypeConsent || ev.Type == stream.TypeIdentify {
			continue
		}
		t := ev.TS.UnixMilli()
		if first == 0 || t < first {
			first = t
		}
		last = max(last, t)
		for i, h := range halfLives {
			v[features.Activity1h+features.ID(i)] += decay(ev.TS, h)
		}
		if ev.SessionID != "" {
			bySession[ev.SessionID] = append(bySession[ev.SessionID], ev)
		} else {
			noSession = append(noSession, ev)
		}
		if ev.ItemID != "" && ev.Type != stream.TypeRemoveFromCart && ev.Type != stream.TypeSearch && len(items) < cfg.MaxDistinctItems {
			items[ev.ItemID] = true
		}
		switch ev.Type {
		case stream.TypeView:
			v[features.ViewsTotal]++
			if ev.Price != nil {
				viewPrice += ev.PriceMicros
				viewPriced++
			}
			if inWindow(ev.TS, time.Minute) {
				v[features.Views1h]++
			}
			if inWindow(ev.TS, 24*time.Minute) {
				v[features.Views24h]++
			}
			if inWindow(ev.TS, 168*time.Minute) {
				v[features.Views7d]++
			}
			credit(ev, 1)
		case stream.TypeCart:
			v[features.CartsTotal]++
			if inWindow(ev.TS, 24*time.Minute) {
				v[features.Carts24h]++
			}
			credit(ev, 3)
		case stream.TypeRemoveFromCart:
			v[features.RemovesTotal]++
		case stream.TypePurchase:
			v[features.PurchasesTotal]++
			v[features.UnitsTotal] += float64(ev.Qty())
			revenue += ev.AmountMicros()
			lastPurchase = max(lastPurchase, t)
			dayRevenue[int64(math.Floor(float64(t)/float64(24*time.Hour/time.Millisecond)))] += ev.AmountMicros()
			if inWindow(ev.TS, 12*time.Hour) {
				v[features.Purchases30d]++
				v[features.Revenue30d] += float64(ev.AmountMicros()) / 1e6
			}
			credit(ev, 5*float64(ev.Qty()))
		case stream.TypeSearch:
			v[features.SearchesTotal]++
			for _, term := range features.Terms(ev.Query) {
				aff[3][term] += decay(ev.TS, cfg.AffinityHalfLife)
			}
		case stream.TypeReview:
			v[features.ReviewsTotal]++
			credit(ev, 2)
		}
	}
	v[features.RevenueTotal] = float64(revenue) / 1e6
	v[features.FirstSeen] = float64(first / 1000)
	v[features.LastSeen] = float64(last / 1000)
	v[features.LastPurchaseAt] = float64(lastPurchase / 1000)
	v[features.DistinctItems] = float64(len(items))

	// Sessions: split each session id's (and the id-less events') sorted
	// times where the gap exceeds the limit.
	countRuns := func(evs []stream.Event, gap time.Duration) {
		for i := 0; i < len(evs); {
			j := i + 1
			for j < len(evs) && evs[j].TS.Sub(evs[j-1].TS) <= gap {
				j++
			}
			cart, purchase := false, false
			for _, e := range evs[i:j] {
				cart = cart || e.Type == stream.TypeCart
				purchase = purchase || e.Type == stream.TypePurchase
			}
			v[features.SessionsTotal]++
			if cart {
				v[features.CartSessions]++
				if !purchase {
					v[features.AbandonedCartSessions]++
				}
			}
			i = j
		}
	}
	for _, s := range bySession {
		countRuns(s, cfg.SessionIDIdle)
	}
	countRuns(noSession, cfg.SessionGap)
	if v[features.CartSessions] > 0 {
		v[features.CartAbandonRate] = v[features.AbandonedCartSessions] / v[features.CartSessions]
	}
	if v[features.ViewsTotal] > 0 {
		v[features.ViewToCartRate] = math.Min(1, v[features.CartsTotal]/v[features.ViewsTotal])
	}
	if v[features.CartsTotal] > 0 {
		v[features.CartToPurchaseRate] = math.Min(1, v[features.PurchasesTotal]/v[features.CartsTotal])
	}
	if viewPriced > 0 {
		v[features.AvgPriceViewed] = float64(viewPrice) / 1e6 / float64(viewPriced)
	}
	if v[features.UnitsTotal] > 0 {
		v[features.AvgPriceBought] = float64(revenue) / 1e6 / v[features.UnitsTotal]
		if v[features.AvgPriceViewed] > 0 {
			v[features.PriceSensitivity] = math.Max(-1, math.Min(1, 1-v[features.AvgPriceBought]/v[features.AvgPriceViewed]))
		}
	}
	day := float64(24 * time.Hour / time.Millisecond)
	if last > 0 {
		v[features.DaysSinceLastSeen] = float64(T-last) / day
		v[features.TenureDays] = float64(T-first) / day
	}
	v[features.DaysSinceLastPurchase] = -1
	if lastPurchase > 0 {
		d := float64(T-lastPurchase) / day
		v[features.DaysSinceLastPurchase] = d
		r := 1.0
		for i, th := range cfg.RFM.RecencyDays {
			if d <= th {
				r = float64(5 - i)
				break
			}
		}
		v[features.RFMRecency] = r
		v[features.RFMFrequency] = score(v[features.PurchasesTotal], cfg.RFM.Frequency)
		if revenue > 0 {
			v[features.RFMMonetary] = score(v[features.RevenueTotal], cfg.RFM.Monetary)
		}
	}
	v[features.RFMScore] = 100*v[features.RFMRecency] + 10*v[features.RFMFrequency] + v[features.RFMMonetary]

	if len(dayRevenue) > 0 {
		firstDay, lastDay := int64(math.MaxInt64), int64(math.MinInt64)
		for d := range dayRevenue {
			firstDay, lastDay = min(firstDay, d), max(lastDay, d)
		}
		dayMs := float64(24 * time.Hour / time.Millisecond)
		x := len(dayRevenue) - 1
		v[features.PurchaseDays] = float64(len(dayRevenue))
		v[features.RepeatTransactions] = float64(x)
		v[features.RecencyWeeks] = float64(lastDay-firstDay) / 7
		v[features.AgeWeeks] = math.Max(0, (float64(T)/dayMs-float64(firstDay))/7)
		if x > 0 {
			v[features.RepeatAvgValue] = float64(revenue-dayRevenue[firstDay]) / 1e6 / float64(x)
		}
	}
	p := features.Profile{At: time.UnixMilli(T).UTC(), Vector: v, Affinities: map[string][]features.Affinity{}}
	for i, d := range features.Dims {
		var list []features.Affinity
		for name, w := range aff[i] {
			list = append(list, features.Affinity{Name: name, Score: w})
		}
		sort.Slice(list, func(a, b int) bool {
			if list[a].Score != list[b].Score {
				return list[a].Score > list[b].Score
			}
			return list[a].Name < list[b].Name
		})
		if len(list) > cfg.TopK {
			list = list[:cfg.TopK]
		}
		if len(list) > 0 {
			p.Affinities[d] = list
		}
	}
	return p
}

func score(x float64, th []float64) float64 {
	if x <= 0 {
		return 0
	}
	s := 1.0
	for i, t := range th {
		if x >= t {
			s = float64(i + 2)
		}
	}
	return s
}

// Diff compares a streamed profile with the recomputed one and describes
// the first differences (nil when equal). Counts, sums and windowed counts
// must match exactly; decayed scores, averages and affinity weights within
// relative tolerance tol (their floating-point sums depend on order).
func Diff(got, want features.Profile, tol float64) []string {
	var d []string
	exact := map[features.ID]bool{}
	for _, id := range []features.ID{features.ViewsTotal, features.CartsTotal, features.RemovesTotal,
		features.PurchasesTotal, features.UnitsTotal, features.RevenueTotal, features.SearchesTotal, features.ReviewsTotal,
		features.FirstSeen, features.LastSeen, features.LastPurchaseAt, features.SessionsTotal, features.DistinctItems,
		features.Views1h, features.Views24h, features.Views7d, features.Carts24h, features.Purchases30d,
		features.CartSessions, features.AbandonedCartSessions, features.RFMRecency, features.RFMFrequency,
		features.RFMMonetary, features.RFMScore, features.PurchaseDays, features.RepeatTransactions} {
		exact[id] = true
	}
	for i := features.ID(0); i < features.NumFeatures; i++ {
		g, w := got.Vector[i], want.Vector[i]
		if exact[i] {
			if g != w {
				d = append(d, fmt.Sprintf("%s = %v, want %v", i.Name(), g, w))
			}
			continue
		}
		if !close(g, w, tol) {
			d = append(d, fmt.Sprintf("%s = %v, want %v (tolerance %g)", i.Name(), g, w, tol))
		}
	}
	for _, dim := range features.Dims {
		g, w := got.Affinities[dim], want.Affinities[dim]
		if len(g) != len(w) {
			d = append(d, fmt.Sprintf("%s affinities: %d entries, want %d", dim, len(g), len(w)))
			continue
		}
		for i := range g {
			// Names may swap only between entries whose scores tie
			// within the tolerance.
			if !close(g[i].Score, w[i].Score, tol) {
				d = append(d, fmt.Sprintf("%s affinity %d: %v, want %v", dim, i, g[i], w[i]))
			}
		}
	}
	return d
}

func close(a, b, tol float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
