package features

import (
	"math"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/twmb/murmur3"

	"github.com/streamprofile/streamprofile/stream"
)

// Window bucket widths, in milliseconds. Each window covers 60 buckets.
const (
	windowBuckets = 60
	bucket1h      = int64(time.Minute / time.Millisecond)
	bucket24h     = int64(24 * time.Minute / time.Millisecond)
	bucket7d      = int64(168 * time.Minute / time.Millisecond)
	bucket30d     = int64(12 * time.Hour / time.Millisecond)
)

// Half-lives of the decayed activity scores, in milliseconds.
var activityHalfLives = [3]int64{
	int64(time.Hour / time.Millisecond),
	int64(24 * time.Hour / time.Millisecond),
	int64(7 * 24 * time.Hour / time.Millisecond),
}

// Outcome says what Apply did with an event.
type Outcome int

// Apply outcomes.
const (
	Applied    Outcome = iota // the event changed the state
	Duplicate                 // the event id was seen before: nothing changed
	Suppressed                // profiling consent is withdrawn: the event was not used
)

// State is one user's feature state. Its zero value is an empty profile.
// A State is owned by one goroutine at a time (the partition processor that
// owns the user); it is not safe for concurrent use.
type State struct {
	// Lifetime counters.
	Views, Carts, Removes, Purchases, Searches, Reviews int64
	Units                                               int64
	RevenueMicros                                       int64
	ViewPriceMicros, ViewPriceN                         int64

	// Event-time marks in unix milliseconds (0: unset).
	FirstSeenMs, LastSeenMs, LastPurchaseMs int64

	// Sliding windows (bucket index → value).
	Views1m, Views24m, Views168m, Carts24m, Purchases12h, Revenue12h window

	// Decayed activity, one per half-life.
	Activity [3]decayed

	// Sessions: live intervals plus the counts of retired ones.
	Sessions                                    []session
	SessionsDone, CartSessionsDone, AbandonDone int64

	// Purchase days, for the BG/NBD / Gamma-Gamma customer summary: same-day
	// purchases are one transaction. Days is the sorted set of UTC day
	// numbers with a purchase (at most maxPurchaseDays; past that,
	// PurchaseDays keeps counting new last days).
	PurchaseDays, FirstPurchaseDay, LastPurchaseDay int64
	FirstDayRevenueMicros                           int64
	Days                                            []int64

	// Items is the sorted set of murmur3-64 hashes of item ids seen.
	Items []uint64

	// Recent holds the most recently viewed distinct items: each item at
	// the event time of its latest view, ordered by (time, item id),
	// oldest first, at most RecentViews+1 of them (one more than a
	// snapshot carries, so that the views before any one view are known:
	// see RecentBefore). Arrival order does not matter.
	Recent []RecentView

	// Affinity maps, one per entry of Dims.
	Aff [len(Dims)]affinity

	// Seen holds recent event-id hashes for de-duplication.
	Seen []seenID

	// Consent state: nil pointer fields in events leave these unchanged.
	// ProfilingOff / AdsOff are true after a withdrawal.
	ProfilingOff, AdsOff bool
	ConsentMs            int64

	// Linked lists the anonymous ids whose profiles were merged into this
	// one (identity resolution); MergedInto names the profile this one was
	// handed to, after which its events are forwarded there.
	Linked     []string
	MergedInto string
	// MergedRoute is the murmur2 hash of the raw id MergedInto stands for
	// (it may be a pseudonym), which routes forwarded events to its
	// partition.
	MergedRoute uint32
}

// window is a sparse bucketed counter sorted by bucket index.
type window []bucket

type bucket struct {
	Idx int64
	Val int64
}

func (w *window) add(idx, v int64) {
	s := *w
	i := sort.Search(len(s), func(i int) bool { return s[i].Idx >= idx })
	if i < len(s) && s[i].Idx == idx {
		s[i].Val += v
		return
	}
	s = append(s, bucket{})
	copy(s[i+1:], s[i:])
	s[i] = bucket{idx, v}
	*w = s
}

// prune drops buckets with index < minIdx.
func (w *window) prune(minIdx int64) {
	s := *w
	i := sort.Search(len(s), func(i int) bool { return s[i].Idx >= minIdx })
	if i > 0 {
		*w = append(s[:0], s[i:]...)
	}
}

// sum adds the buckets in (hi-n, hi].
func (w window) sum(hi int64, n int64) int64 {
	var t int64
	for _, b := range w {
		if b.Idx > hi-n && b.Idx <= hi {
			t += b.Val
		}
	}
	return t
}

// decayed is Σ 2^(-(ref-t)/h) as of ref.
type decayed struct {
	V   float64
	Ref int64
}

func (d *decayed) add(t, h int64, w float64) {
	switch {
	case d.Ref == 0 && d.V == 0:
		d.V, d.Ref = w, t
	case t >= d.Ref:
		d.V = d.V*math.Exp2(-float64(t-d.Ref)/float64(h)) + w
		d.Ref = t
	default:
		d.V += w * math.Exp2(-float64(d.Ref-t)/float64(h))
	}
}

func (d decayed) at(t, h int64) float64 {
	if d.V == 0 {
		return 0
	}
	return d.V * math.Exp2(-float64(t-d.Ref)/float64(h))
}

// session is a live session interval. Key is 0 for gap sessions (events
// without session_id), else the murmur3-64 hash of the session id.
type session struct {
	Key        uint64
	Start, End int64
	Flags      uint8
}

const (
	flagCart     uint8 = 1
	flagPurchase uint8 = 2
)

// affinity holds feature-hashed weights. Weights are stored relative to the
// epoch Base: an entry's weight at time t is W·2^(−(t−Base)/h). Adding with a
// fixed epoch keeps the result independent of arrival order.
type affinity struct {
	Base    int64
	Entries []affEntry
}

type affEntry struct {
	Bucket uint32
	W      float64
	Name   string
}

type seenID struct {
	H  uint64
	Ts int64
}

// Env is what Apply needs besides the event: the configuration and the
// lower bound on any event time that can still arrive for this user (the
// partition watermark, which is the newest event time minus the allowed
// lateness). State that can no longer change is retired against it.
type Env struct {
	Cfg *Config
	// Watermark in unix milliseconds.
	Watermark int64
}

// IsDuplicate reports whether the event id was applied before (within the
// de-duplication retention).
func (s *State) IsDuplicate(eventID string) bool {
	h := murmur3.StringSum64(eventID)
	i := sort.Search(len(s.Seen), func(i int) bool { return s.Seen[i].H >= h })
	return i < len(s.Seen) && s.Seen[i].H == h
}

// Apply applies one validated event. It returns Duplicate, leaving the state
// unchanged, when the event id was seen before. Apply never fails: the event
// has been validated by stream.Decoder.
func (s *State) Apply(ev *stream.Event, env Env) Outcome {
	cfg := env.Cfg
	if s.IsDuplicate(ev.EventID) {
		return Duplicate
	}
	t := ev.TS.UnixMilli()
	s.remember(ev.EventID, t, env)

	if ev.Type == stream.TypeConsent {
		if t >= s.ConsentMs {
			if ev.Consent.Ads != nil {
				s.AdsOff = !*ev.Consent.Ads
			}
			if ev.Consent.Profiling != nil {
				s.ProfilingOff = !*ev.Consent.Profiling
				if s.ProfilingOff {
					s.eraseDerived()
				}
			}
			s.ConsentMs = t
		}
		return Applied
	}
	if ev.Type == stream.TypeIdentify {
		return Applied
	}
	if s.ProfilingOff {
		return Suppressed
	}

	if s.FirstSeenMs == 0 || t < s.FirstSeenMs {
		s.FirstSeenMs = t
	}
	if t > s.LastSeenMs {
		s.LastSeenMs = t
	}
	for i := range s.Activity {
		s.Activity[i].add(t, activityHalfLives[i], 1)
	}

	var flags uint8
	switch ev.Type {
	case stream.TypeView:
		s.Views++
		if ev.Price != nil {
			s.ViewPriceMicros += ev.PriceMicros
			s.ViewPriceN++
		}
		s.Views1m.add(t/bucket1h, 1)
		s.Views24m.add(t/bucket24h, 1)
		s.Views168m.add(t/bucket7d, 1)
		s.item(ev.ItemID, cfg)
		s.view(ev.ItemID, t)
		s.credit(ev, weightView, t, cfg)
	case stream.TypeCart:
		s.Carts++
		s.Carts24m.add(t/bucket24h, 1)
		s.item(ev.ItemID, cfg)
		s.credit(ev, weightCart, t, cfg)
		flags = flagCart
	case stream.TypeRemoveFromCart:
		s.Removes++
	case stream.TypePurchase:
		s.Purchases++
		q := ev.Qty()
		s.Units += q
		amt := ev.AmountMicros()
		s.RevenueMicros += amt
		if t > s.LastPurchaseMs {
			s.LastPurchaseMs = t
		}
		s.purchaseDay(t, amt)
		s.Purchases12h.add(t/bucket30d, 1)
		s.Revenue12h.add(t/bucket30d, amt)
		s.item(ev.ItemID, cfg)
		s.credit(ev, weightPurchase*float64(q), t, cfg)
		flags = flagPurchase
	case stream.TypeSearch:
		s.Searches++
		for _, term := range Terms(ev.Query) {
			s.Aff[3].add(term, weightSearch, t, cfg)
		}
	case stream.TypeReview:
		s.Reviews++
		s.item(ev.ItemID, cfg)
		s.credit(ev, weightReview, t, cfg)
	}
	s.session(ev, t, flags, cfg)
	s.retire(env)
	return Applied
}

const dayMs = int64(24 * time.Hour / time.Millisecond)

// purchaseDay records a purchase in the per-day customer summary.
func (s *State) purchaseDay(t, amount int64) {
	d := floorDiv(t, dayMs)
	switch {
	case s.PurchaseDays == 0:
		s.FirstPurchaseDay, s.LastPurchaseDay, s.FirstDayRevenueMicros = d, d, amount
	case d < s.FirstPurchaseDay:
		s.FirstPurchaseDay, s.FirstDayRevenueMicros = d, amount
	case d == s.FirstPurchaseDay:
		s.FirstDayRevenueMicros += amount
	}
	newLast := d > s.LastPurchaseDay
	if newLast {
		s.LastPurchaseDay = d
	}
	i := sort.Search(len(s.Days), func(i int) bool { return s.Days[i] >= d })
	if i < len(s.Days) && s.Days[i] == d {
		return
	}
	if len(s.Days) < maxPurchaseDays {
		s.Days = append(s.Days, 0)
		copy(s.Days[i+1:], s.Days[i:])
		s.Days[i] = d
		s.PurchaseDays++
	} else if newLast {
		s.PurchaseDays++
	}
}

// maxPurchaseDays bounds the purchase-day set kept per user.
const maxPurchaseDays = 1024

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func (s *State) item(id string, cfg *Config) {
	if id == "" {
		return
	}
	s.addItemHash(murmur3.StringSum64(id), cfg)
}

// RecentViews is how many recently viewed items a snapshot carries.
const RecentViews = 5

// recentCap is the capacity of State.Recent: the kept views and one
// being inserted.
const recentCap = RecentViews + 2

// RecentView is an item viewed and the event time (unix ms) of its latest
// view.
type RecentView struct {
	Item string
	Ts   int64
}

// recentBefore reports whether a ranks before (is older than) b.
func recentBefore(a, b RecentView) bool {
	return a.Ts < b.Ts || a.Ts == b.Ts && a.Item < b.Item
}

// view records a view of item at t in Recent. The result is the
// RecentViews+1 items with the latest views whatever the order of the
// views: an item keeps its latest view time, and an item dropped from the
// list had an older latest view than every item kept.
func (s *State) view(item string, t int64) {
	if item == "" {
		return
	}
	s.addRecent(RecentView{Item: item, Ts: t})
}

func (s *State) addRecent(v RecentView) {
	for i, x := range s.Recent {
		if x.Item != v.Item {
			continue
		}
		if !recentBefore(x, v) {
			return
		}
		s.Recent = append(s.Recent[:i], s.Recent[i+1:]...)
		break
	}
	if cap(s.Recent) < recentCap {
		// One allocation for the state's lifetime in memory: the list
		// never grows past recentCap (the full list plus the insertion).
		s.Recent = append(make([]RecentView, 0, recentCap), s.Recent...)
	}
	i := sort.Search(len(s.Recent), func(i int) bool { return recentBefore(v, s.Recent[i]) })
	s.Recent = append(s.Recent, RecentView{})
	copy(s.Recent[i+1:], s.Recent[i:])
	s.Recent[i] = v
	if n := len(s.Recent) - (RecentViews + 1); n > 0 {
		s.Recent = append(s.Recent[:0], s.Recent[n:]...)
	}
}

// AppendRecentBefore appends to dst the items of the user's latest
// RecentViews views before a view of item, oldest first: the distinct
// items other than item, each ranked by the event time of its latest view
// (ties: smaller id first). Called right after the view of item was
// applied, it gives the items viewed before it, as far as Recent keeps
// them (at most RecentViews).
func (s *State) AppendRecentBefore(dst []string, item string) []string {
	n := 0
	for _, x := range s.Recent {
		if x.Item != item {
			n++
		}
	}
	skip := max(0, n-RecentViews)
	for _, x := range s.Recent {
		if x.Item == item {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		dst = append(dst, x.Item)
	}
	return dst
}

func (s *State) credit(ev *stream.Event, w float64, t int64, cfg *Config) {
	if c := ev.Category; c != "" {
		s.Aff[0].add(c, w, t, cfg)
		root := c
		if i := strings.IndexByte(c, '.'); i >= 0 {
			root = c[:i]
		}
		s.Aff[1].add(root, w, t, cfg)
	}
	if ev.Brand != "" {
		s.Aff[2].add(ev.Brand, w, t, cfg)
	}
}

// maxExp bounds the epoch-relative exponent before the map is rebased, far
// from float64 overflow (2^1023).
const maxExp = 600

func (a *affinity) add(name string, w float64, t int64, cfg *Config) {
	h := int64(cfg.AffinityHalfLife / time.Millisecond)
	if len(a.Entries) == 0 {
		a.Base = t
	}
	if e := float64(t-a.Base) / float64(h); e > maxExp {
		// Rebase so stored weights stay finite: multiply every weight by
		// 2^(−(t−Base)/h) and move the epoch to t.
		f := math.Exp2(-e)
		for i := range a.Entries {
			a.Entries[i].W *= f
		}
		a.Base = t
	}
	b := murmur3.StringSum32(name) % cfg.HashBuckets
	a.put(b, w*math.Exp2(float64(t-a.Base)/float64(h)), name, cfg)
}

// session records the event in its session interval, merging intervals
// that the event bridges.
func (s *State) session(ev *stream.Event, t int64, flags uint8, cfg *Config) {
	var key uint64
	if ev.SessionID != "" {
		key = murmur3.StringSum64(ev.SessionID)
		if key == 0 {
			key = 1
		}
	}
	s.addInterval(session{Key: key, Start: t, End: t, Flags: flags}, cfg)
}

// sessionGap is the gap that splits sessions of the given key.
func sessionGap(key uint64, cfg *Config) int64 {
	if key == 0 {
		return int64(cfg.SessionGap / time.Millisecond)
	}
	return int64(cfg.SessionIDIdle / time.Millisecond)
}

// addInterval inserts a session interval, merging every interval of the
// same key within the gap (transitively).
func (s *State) addInterval(n session, cfg *Config) {
	gap := sessionGap(n.Key, cfg)
	out := s.Sessions[:0]
	for merged := true; merged; {
		merged = false
		out = s.Sessions[:0]
		for _, x := range s.Sessions {
			if x.Key == n.Key && x.Start <= n.End+gap && x.End >= n.Start-gap {
				n.Start, n.End, n.Flags = min(n.Start, x.Start), max(n.End, x.End), n.Flags|x.Flags
				merged = true
				continue
			}
			out = append(out, x)
		}
		s.Sessions = out
	}
	s.Sessions = append(out, n)
}

// retire folds state that no event at or after the watermark can change
// into compact counters, and prunes expired buckets and ids.
func (s *State) retire(env Env) {
	cfg := env.Cfg
	wm := env.Watermark
	if wm <= 0 {
		return
	}
	gapMs := int64(cfg.SessionGap / time.Millisecond)
	idleMs := int64(cfg.SessionIDIdle / time.Millisecond)
	kept := s.Sessions[:0]
	for _, x := range s.Sessions {
		g := gapMs
		if x.Key != 0 {
			g = idleMs
		}
		if x.End < wm-g {
			s.SessionsDone++
			if x.Flags&flagCart != 0 {
				s.CartSessionsDone++
				if x.Flags&flagPurchase == 0 {
					s.AbandonDone++
				}
			}
			continue
		}
		kept = append(kept, x)
	}
	s.Sessions = kept

	s.Views1m.prune(wm/bucket1h - windowBuckets + 1)
	s.Views24m.prune(wm/bucket24h - windowBuckets + 1)
	s.Views168m.prune(wm/bucket7d - windowBuckets + 1)
	s.Carts24m.prune(wm/bucket24h - windowBuckets + 1)
	s.Purchases12h.prune(wm/bucket30d - windowBuckets + 1)
	s.Revenue12h.prune(wm/bucket30d - windowBuckets + 1)

	s.pruneSeen(wm-int64(cfg.DedupeRetention/time.Millisecond), cfg.MaxDedupeIDs)
}

// Remember records an id (an event id, or a merge id) for
// de-duplication, at event time t (unix ms).
func (s *State) Remember(id string, t int64, env Env) { s.remember(id, t, env) }

func (s *State) remember(id string, t int64, env Env) {
	h := murmur3.StringSum64(id)
	i := sort.Search(len(s.Seen), func(i int) bool { return s.Seen[i].H >= h })
	s.Seen = append(s.Seen, seenID{})
	copy(s.Seen[i+1:], s.Seen[i:])
	s.Seen[i] = seenID{H: h, Ts: t}
	if len(s.Seen) > env.Cfg.MaxDedupeIDs {
		s.pruneSeen(math.MinInt64, env.Cfg.MaxDedupeIDs)
	}
}

// pruneSeen drops ids older than minTs, then the oldest until at most max
// remain.
func (s *State) pruneSeen(minTs int64, max int) {
	kept := s.Seen[:0]
	for _, x := range s.Seen {
		if x.Ts >= minTs {
			kept = append(kept, x)
		}
	}
	s.Seen = kept
	if len(s.Seen) <= max {
		return
	}
	ts := make([]int64, len(s.Seen))
	for i, x := range s.Seen {
		ts[i] = x.Ts
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	cut := ts[len(ts)-max] // keep Ts > cut, and as many Ts == cut as fit
	room := max
	for _, x := range s.Seen {
		if x.Ts > cut {
			room--
		}
	}
	kept = s.Seen[:0]
	for _, x := range s.Seen {
		if x.Ts > cut || (x.Ts == cut && room > 0) {
			if x.Ts == cut {
				room--
			}
			kept = append(kept, x)
		}
	}
	s.Seen = kept
}

// Terms splits a search query into lower-cased tokens of at least two
// letters or digits, without duplicates, in order of first appearance.
func Terms(q string) []string {
	f := strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	out := f[:0]
	for _, w := range f {
		if len([]rune(w)) < 2 {
			continue
		}
		dup := false
		for _, o := range out {
			if o == w {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, w)
		}
	}
	return out
}

// eraseDerived drops every behavioural feature, keeping only what is needed
// to honour the user's choices: consent flags, identity links, the
// de-duplication ids (so a replay cannot rebuild the profile) and nothing
// else.
func (s *State) eraseDerived() {
	*s = State{
		Seen: s.Seen, ProfilingOff: s.ProfilingOff, AdsOff: s.AdsOff, ConsentMs: s.ConsentMs,
		Linked: s.Linked, MergedInto: s.MergedInto, MergedRoute: s.MergedRoute,
	}
}

// Empty reports whether no behavioural event has been applied.
func (s *State) Empty() bool { return s.FirstSeenMs == 0 }
