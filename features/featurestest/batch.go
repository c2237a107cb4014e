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
	var viewPrice, revenue, revenue30d int64
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
				revenue30d += ev.AmountMicros()
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
	// Money is summed in integer micros and converted once: the sums are
	// exact whatever the order of the events.
	v[features.RevenueTotal] = float64(revenue) / 1e6
	v[features.Revenue30d] = float64(revenue30d) / 1e6
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

// exactFeatures must equal in the streamed and the recomputed profile bit
// for bit. Each is a count or an integer time, an integer number of micros
// converted by one division by 1e6 (revenue_total, revenue_30d: both sides
// sum integer micros, so the sums do not depend on the order of the events),
// or one division of two such exact values (IEEE division is correctly
// rounded, so equal operands give equal quotients): the rates, the day and
// week distances, the RFM scores.
var exactFeatures = map[features.ID]bool{}

func init() {
	for _, id := range []features.ID{features.ViewsTotal, features.CartsTotal, features.RemovesTotal,
		features.PurchasesTotal, features.UnitsTotal, features.RevenueTotal, features.SearchesTotal, features.ReviewsTotal,
		features.FirstSeen, features.LastSeen, features.LastPurchaseAt, features.SessionsTotal, features.DistinctItems,
		features.Views1h, features.Views24h, features.Views7d, features.Carts24h, features.Purchases30d, features.Revenue30d,
		features.CartSessions, features.AbandonedCartSessions, features.CartAbandonRate, features.ViewToCartRate,
		features.CartToPurchaseRate, features.DaysSinceLastSeen, features.TenureDays, features.DaysSinceLastPurchase,
		features.RFMRecency, features.RFMFrequency, features.RFMMonetary, features.RFMScore,
		features.PurchaseDays, features.RepeatTransactions, features.RecencyWeeks} {
		exactFeatures[id] = true
	}
}

// Diff compares a streamed profile with the recomputed one and describes
// the differences (nil when equal).
//
// The features in exactFeatures (counts, integer times, money sums and
// windowed sums, which both sides keep in integers, and single divisions
// of those) must match exactly. The others must match within relative
// tolerance tol: the decayed activities, whose floating-point sums depend
// on the order of the terms (the streaming state keeps them rebased to a
// moving reference time), and the averages and week ages computed in
// several rounded steps that the two sides group differently.
//
// Each affinity list must have the same length, and position by position
// scores equal within tol and the same name. Both sides rank by score
// descending and break exact ties by name ascending (features' top-K
// selection ranks its stored weights so, Recompute sorts so), so where two
// neighbours tie exactly in both lists their names must be in that order
// in both. Only where the recomputed scores of neighbours tie within tol
// without tying exactly in both lists may the two orders differ (the
// floating-point sums differ in their last bits): names may be permuted
// within a run of such neighbours; and when the list is full
// (features.DefaultConfig.TopK entries, the K every caller evaluates with)
// its last run, or its last entry, may hold names the recomputation cut
// off, whose scores tie with them.
func Diff(got, want features.Profile, tol float64) []string {
	var d []string
	for i := features.ID(0); i < features.NumFeatures; i++ {
		g, w := got.Vector[i], want.Vector[i]
		if exactFeatures[i] {
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
		d = append(d, diffAffinities(dim, got.Affinities[dim], want.Affinities[dim], tol, features.DefaultConfig.TopK)...)
	}
	return d
}

// diffAffinities compares a streamed top-K list with the recomputed one;
// see Diff. A full list (topK entries) may have been cut inside its last
// run of tied scores.
func diffAffinities(dim string, g, w []features.Affinity, tol float64, topK int) []string {
	if len(g) != len(w) {
		return []string{fmt.Sprintf("%s affinities: %d entries %v, want %d %v", dim, len(g), g, len(w), w)}
	}
	var d []string
	names := make(map[string]bool, len(g))
	for i := range g {
		if names[g[i].Name] {
			d = append(d, fmt.Sprintf("%s affinity %d: %v repeats a name", dim, i, g[i]))
		}
		names[g[i].Name] = true
		if !close(g[i].Score, w[i].Score, tol) {
			d = append(d, fmt.Sprintf("%s affinity %d: %v, want %v (tolerance %g)", dim, i, g[i], w[i], tol))
		}
	}
	inWant := make(map[string]bool, len(w))
	for _, a := range w {
		inWant[a.Name] = true
	}
	// loose reports whether entries k-1 and k may rank in either order:
	// their recomputed scores tie within tol, but not exactly in both
	// lists (the exact ties are ranked by name on both sides).
	loose := func(k int) bool {
		exact := w[k-1].Score == w[k].Score && g[k-1].Score == g[k].Score
		return !exact && close(w[k-1].Score, w[k].Score, tol)
	}
	for i := 0; i < len(w); {
		// w[i:j] is a run of entries that may rank in any order.
		j := i + 1
		for j < len(w) && loose(j) {
			j++
		}
		tied := make(map[string]bool, j-i)
		for _, a := range w[i:j] {
			tied[a.Name] = true
		}
		cut := j == len(w) && len(w) == topK
		for k := i; k < j; k++ {
			switch n := g[k].Name; {
			case n == w[k].Name, tied[n]:
			case cut && !inWant[n]:
				// Tied with the recomputation's last entries, which
				// were cut off at topK.
			default:
				d = append(d, fmt.Sprintf("%s affinity %d: %v, want %v (may rank in any order: %v)", dim, k, g[k], w[k], w[i:j]))
			}
		}
		i = j
	}
	return d
}

func close(a, b, tol float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
