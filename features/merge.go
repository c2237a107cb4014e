package features

import (
	"math"
	"sort"
	"time"
)

// Merge folds o — the state of another profile of the same person, handed
// over at identity resolution — into s. The result equals the state that
// applying both profiles' events to one profile would have given: counts
// and sums add, windows add bucket by bucket, decayed scores and affinities
// are aligned to a common reference before adding, sessions are united
// (intervals of one session id merge), sets are united and the newest
// consent wins. Event ids are united too, so an event forwarded after the
// merge that was already part of o is recognised as a duplicate.
func (s *State) Merge(o *State, env Env) {
	cfg := env.Cfg
	s.Views += o.Views
	s.Carts += o.Carts
	s.Removes += o.Removes
	s.Purchases += o.Purchases
	s.Searches += o.Searches
	s.Reviews += o.Reviews
	s.Units += o.Units
	s.RevenueMicros += o.RevenueMicros
	s.ViewPriceMicros += o.ViewPriceMicros
	s.ViewPriceN += o.ViewPriceN
	if o.FirstSeenMs != 0 && (s.FirstSeenMs == 0 || o.FirstSeenMs < s.FirstSeenMs) {
		s.FirstSeenMs = o.FirstSeenMs
	}
	s.LastSeenMs = max(s.LastSeenMs, o.LastSeenMs)
	s.LastPurchaseMs = max(s.LastPurchaseMs, o.LastPurchaseMs)

	for _, p := range [...]struct{ dst, src *window }{
		{&s.Views1m, &o.Views1m}, {&s.Views24m, &o.Views24m}, {&s.Views168m, &o.Views168m},
		{&s.Carts24m, &o.Carts24m}, {&s.Purchases12h, &o.Purchases12h}, {&s.Revenue12h, &o.Revenue12h},
	} {
		for _, b := range *p.src {
			p.dst.add(b.Idx, b.Val)
		}
	}
	for i := range s.Activity {
		s.Activity[i] = mergeDecayed(s.Activity[i], o.Activity[i], activityHalfLives[i])
	}

	for _, x := range o.Sessions {
		s.addInterval(x, cfg)
	}
	s.SessionsDone += o.SessionsDone
	s.CartSessionsDone += o.CartSessionsDone
	s.AbandonDone += o.AbandonDone

	s.mergeDays(o)

	for _, h := range o.Items {
		s.addItemHash(h, cfg)
	}
	for _, v := range o.Recent {
		s.addRecent(v)
	}
	for i := range s.Aff {
		s.Aff[i].merge(&o.Aff[i], cfg)
	}
	for _, x := range o.Seen {
		i := sort.Search(len(s.Seen), func(i int) bool { return s.Seen[i].H >= x.H })
		if i < len(s.Seen) && s.Seen[i].H == x.H {
			continue
		}
		s.Seen = append(s.Seen, seenID{})
		copy(s.Seen[i+1:], s.Seen[i:])
		s.Seen[i] = x
	}
	if len(s.Seen) > cfg.MaxDedupeIDs {
		s.pruneSeen(math.MinInt64, cfg.MaxDedupeIDs)
	}
	if o.ConsentMs > s.ConsentMs {
		s.ProfilingOff, s.AdsOff, s.ConsentMs = o.ProfilingOff, o.AdsOff, o.ConsentMs
	}
	for _, l := range o.Linked {
		s.Link(l)
	}
	s.retire(env)
}

// Link records that the profile id was merged into this one.
func (s *State) Link(id string) {
	for _, l := range s.Linked {
		if l == id {
			return
		}
	}
	s.Linked = append(s.Linked, id)
}

func mergeDecayed(a, b decayed, h int64) decayed {
	switch {
	case b.V == 0:
		return a
	case a.V == 0:
		return b
	}
	ref := max(a.Ref, b.Ref)
	return decayed{
		V:   a.V*math.Exp2(-float64(ref-a.Ref)/float64(h)) + b.V*math.Exp2(-float64(ref-b.Ref)/float64(h)),
		Ref: ref,
	}
}

func (s *State) mergeDays(o *State) {
	if o.PurchaseDays == 0 {
		return
	}
	if s.PurchaseDays == 0 {
		s.PurchaseDays, s.FirstPurchaseDay, s.LastPurchaseDay = o.PurchaseDays, o.FirstPurchaseDay, o.LastPurchaseDay
		s.FirstDayRevenueMicros = o.FirstDayRevenueMicros
		s.Days = append(s.Days[:0], o.Days...)
		return
	}
	switch {
	case o.FirstPurchaseDay < s.FirstPurchaseDay:
		s.FirstPurchaseDay, s.FirstDayRevenueMicros = o.FirstPurchaseDay, o.FirstDayRevenueMicros
	case o.FirstPurchaseDay == s.FirstPurchaseDay:
		s.FirstDayRevenueMicros += o.FirstDayRevenueMicros
	}
	s.LastPurchaseDay = max(s.LastPurchaseDay, o.LastPurchaseDay)
	// Days beyond the kept sets (past maxPurchaseDays) cannot be compared;
	// count them as distinct.
	extra := (s.PurchaseDays - int64(len(s.Days))) + (o.PurchaseDays - int64(len(o.Days)))
	union := make([]int64, 0, len(s.Days)+len(o.Days))
	i, j := 0, 0
	for i < len(s.Days) || j < len(o.Days) {
		switch {
		case j == len(o.Days) || (i < len(s.Days) && s.Days[i] < o.Days[j]):
			union = append(union, s.Days[i])
			i++
		case i == len(s.Days) || o.Days[j] < s.Days[i]:
			union = append(union, o.Days[j])
			j++
		default:
			union = append(union, s.Days[i])
			i++
			j++
		}
	}
	if len(union) > maxPurchaseDays {
		extra += int64(len(union) - maxPurchaseDays)
		union = union[len(union)-maxPurchaseDays:]
	}
	s.Days = union
	s.PurchaseDays = int64(len(union)) + extra
}

func (s *State) addItemHash(h uint64, cfg *Config) {
	i := sort.Search(len(s.Items), func(i int) bool { return s.Items[i] >= h })
	if i < len(s.Items) && s.Items[i] == h {
		return
	}
	if len(s.Items) >= cfg.MaxDistinctItems {
		return
	}
	s.Items = append(s.Items, 0)
	copy(s.Items[i+1:], s.Items[i:])
	s.Items[i] = h
}

// merge adds o's entries, rebasing both maps to the later epoch.
func (a *affinity) merge(o *affinity, cfg *Config) {
	if len(o.Entries) == 0 {
		return
	}
	h := float64(cfg.AffinityHalfLife / time.Millisecond)
	if len(a.Entries) == 0 {
		a.Base = o.Base
	}
	base := max(a.Base, o.Base)
	if f := math.Exp2(float64(a.Base-base) / h); f != 1 {
		for i := range a.Entries {
			a.Entries[i].W *= f
		}
	}
	a.Base = base
	f := math.Exp2(float64(o.Base-base) / h)
	for _, e := range o.Entries {
		a.put(e.Bucket, e.W*f, e.Name, cfg)
	}
}

// put adds weight w to bucket b (named name), evicting the weakest entry
// when the map is full and w is stronger.
func (a *affinity) put(b uint32, w float64, name string, cfg *Config) {
	for i := range a.Entries {
		if a.Entries[i].Bucket == b {
			a.Entries[i].W += w
			a.Entries[i].Name = name
			return
		}
	}
	if len(a.Entries) >= cfg.MaxAffinityEntries {
		weakest := 0
		for i := range a.Entries {
			if a.Entries[i].W < a.Entries[weakest].W {
				weakest = i
			}
		}
		if a.Entries[weakest].W >= w {
			return
		}
		a.Entries[weakest] = affEntry{Bucket: b, W: w, Name: name}
		return
	}
	a.Entries = append(a.Entries, affEntry{Bucket: b, W: w, Name: name})
}
