package scorer

import (
	"math"
	"slices"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// Bounds of the per-user lists.
const (
	maxCart      = 16 // items carted and not bought since
	maxBrowse    = 8  // high-intent items viewed since the last cart
	maxViewed    = 16 // items viewed with their price, for price drops
	maxPurchased = 64 // items bought (never recommended)
	maxRecent    = 5  // recently viewed items, for co-occurrence
	maxCaps      = 16 // (kind, day) counters
	maxExplained = 64 // contributions kept per head
)

// Network heads the scorer reads (inputs.HeadPurchase, inputs.HeadRepeat).
const (
	headPurchase = 0
	headRepeat   = 1
	numHeads     = 2
)

// viewedItem is an item the user viewed and the price they saw.
type viewedItem struct {
	Item  string
	Price float64
	At    int64 // event time, unix ms
}

// capCount counts the triggers of one kind on one UTC day.
type capCount struct {
	Kind uint8 // index in Kinds()
	Day  int64 // UTC day number
	N    int64
}

// contribution is one input's signed effect on a head's score.
type contribution struct {
	Input string
	Delta float64
}

// userState is everything the scorer keeps per user besides the segment
// membership: the last snapshot (to re-evaluate at timers), the network
// scores it got, and the trigger and recommendation state. It is stored in
// the user's `timer` hash, field `s` (see store.go).
type userState struct {
	LastTS   int64 // event time of the last applied snapshot, unix ms (0: none)
	LastType string
	Vec      features.Vector
	Tokens   [len(features.Dims)][]string
	AdsOff   bool

	// Network scores at LastTS (NaN: no champion), the version, and the
	// top contributions per head.
	Net     [numHeads]float64
	Model   int64
	Explain [numHeads][]contribution

	EvalAt int64 // last evaluation time, unix ms
	Due    int64 // next timer, unix ms (0: none)

	CartAt      int64 // last cart with no purchase since (0: none)
	Cart        []string
	BrowseAt    int64 // first high-intent view since the last cart (0: none)
	BrowseScore float64
	Browse      []string
	WinBackFor  int64 // the last_seen (ms) for which win-back was decided
	Viewed      []viewedItem
	Purchased   []string
	Recent      []string
	Caps        []capCount
}

// stateFormat is the version byte of the encoding.
const stateFormat = 1

// marshal encodes the state.
func (u *userState) marshal(b []byte) []byte {
	e := enc{b: b}
	e.byte1(stateFormat)
	e.v(u.LastTS)
	e.str(u.LastType)
	e.uv(uint64(len(u.Vec)))
	for _, x := range u.Vec {
		e.f64(x)
	}
	for _, t := range u.Tokens {
		e.strs(t)
	}
	var flags byte
	if u.AdsOff {
		flags |= 1
	}
	e.byte1(flags)
	for _, x := range u.Net {
		e.f64(x)
	}
	e.v(u.Model)
	for _, cs := range u.Explain {
		e.uv(uint64(len(cs)))
		for _, c := range cs {
			e.str(c.Input)
			e.f64(c.Delta)
		}
	}
	e.v(u.EvalAt)
	e.v(u.Due)
	e.v(u.CartAt)
	e.strs(u.Cart)
	e.v(u.BrowseAt)
	e.f64(u.BrowseScore)
	e.strs(u.Browse)
	e.v(u.WinBackFor)
	e.uv(uint64(len(u.Viewed)))
	for _, x := range u.Viewed {
		e.str(x.Item)
		e.f64(x.Price)
		e.v(x.At)
	}
	e.strs(u.Purchased)
	e.strs(u.Recent)
	e.uv(uint64(len(u.Caps)))
	for _, c := range u.Caps {
		e.byte1(c.Kind)
		e.v(c.Day)
		e.v(c.N)
	}
	return e.b
}

// unmarshal decodes what marshal wrote; an empty input is the empty state.
// Any other malformed input is an error wrapping ErrCorrupt.
func (u *userState) unmarshal(b []byte) error {
	*u = userState{}
	for i := range u.Net {
		u.Net[i] = math.NaN()
	}
	if len(b) == 0 {
		return nil
	}
	d := dec{b: b}
	if f := d.byte1(); f != stateFormat {
		d.fail("unknown format")
		return d.err
	}
	u.LastTS = d.v()
	u.LastType = d.str()
	if n := d.n(maxDecodedList); n != len(u.Vec) && d.err == nil {
		// Another feature set: drop what cannot be interpreted.
		d.fail("feature count differs")
	}
	for i := range u.Vec {
		u.Vec[i] = d.finite(d.f64(), "feature")
	}
	for i := range u.Tokens {
		u.Tokens[i] = d.strs(64)
	}
	flags := d.byte1()
	u.AdsOff = flags&1 != 0
	for i := range u.Net {
		x := d.f64()
		if !math.IsNaN(x) && !(x >= 0 && x <= 1) {
			d.fail("score outside [0, 1]")
		}
		u.Net[i] = x
	}
	u.Model = d.v()
	for h := range u.Explain {
		n := d.n(maxExplained)
		for i := 0; i < n && d.err == nil; i++ {
			u.Explain[h] = append(u.Explain[h], contribution{Input: d.str(), Delta: d.finite(d.f64(), "contribution")})
		}
	}
	u.EvalAt = d.v()
	u.Due = d.v()
	u.CartAt = d.v()
	u.Cart = d.strs(maxCart)
	u.BrowseAt = d.v()
	u.BrowseScore = d.finite(d.f64(), "browse score")
	u.Browse = d.strs(maxBrowse)
	u.WinBackFor = d.v()
	n := d.n(maxViewed)
	for i := 0; i < n && d.err == nil; i++ {
		u.Viewed = append(u.Viewed, viewedItem{Item: d.str(), Price: d.finite(d.f64(), "price"), At: d.v()})
	}
	u.Purchased = d.strs(maxPurchased)
	u.Recent = d.strs(maxRecent)
	n = d.n(maxCaps)
	for i := 0; i < n && d.err == nil; i++ {
		c := capCount{Kind: d.byte1(), Day: d.v(), N: d.v()}
		if int(c.Kind) >= len(Kinds()) {
			d.fail("unknown trigger kind")
		}
		u.Caps = append(u.Caps, c)
	}
	if err := d.end(); err != nil {
		*u = userState{}
		for i := range u.Net {
			u.Net[i] = math.NaN()
		}
		return err
	}
	return nil
}

// pushBounded appends x to list unless present, dropping the oldest
// entries beyond limit; a present x moves to the end.
func pushBounded(list []string, x string, limit int) []string {
	if i := slices.Index(list, x); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	list = append(list, x)
	if len(list) > limit {
		list = slices.Delete(list, 0, len(list)-limit)
	}
	return list
}

// bought reports whether the user bought item (within the bounded set).
func (u *userState) bought(item string) bool { return slices.Contains(u.Purchased, item) }

// lastSeenMs is the user's last activity in event time.
func (u *userState) lastSeenMs() int64 { return int64(u.Vec[features.LastSeen]) * 1000 }

// lastPurchaseMs is the user's last purchase in event time (0: never).
func (u *userState) lastPurchaseMs() int64 { return int64(u.Vec[features.LastPurchaseAt]) * 1000 }

// observe records what a snapshot says about the user: its features, its
// items in the trigger lists.
func (u *userState) observe(s *features.Snapshot, v *features.Vector) {
	u.Vec = *v
	for i, d := range features.Dims {
		u.Tokens[i] = append(u.Tokens[i][:0], s.Tokens[d]...)
		if len(u.Tokens[i]) > 64 {
			u.Tokens[i] = u.Tokens[i][:64]
		}
	}
	u.AdsOff = s.AdsOff
	ts := s.TS.UnixMilli()
	if ts > u.LastTS {
		u.LastTS, u.LastType = ts, s.Type
	}
	item := s.ItemID
	if item == "" {
		return
	}
	switch stream.EventType(s.Type) {
	case stream.TypeView:
		u.Recent = pushBounded(u.Recent, item, maxRecent)
		if s.Price > 0 && !u.bought(item) {
			u.rememberView(item, s.Price, ts)
		}
	case stream.TypeCart:
		u.Cart = pushBounded(u.Cart, item, maxCart)
		u.CartAt = max(u.CartAt, ts)
		u.BrowseAt, u.BrowseScore, u.Browse = 0, 0, u.Browse[:0]
	case stream.TypeRemoveFromCart:
		if i := slices.Index(u.Cart, item); i >= 0 {
			u.Cart = slices.Delete(u.Cart, i, i+1)
		}
		if len(u.Cart) == 0 {
			u.CartAt = 0
		}
	case stream.TypePurchase:
		u.Purchased = pushBounded(u.Purchased, item, maxPurchased)
		u.Cart, u.CartAt = u.Cart[:0], 0
		u.BrowseAt, u.BrowseScore, u.Browse = 0, 0, u.Browse[:0]
		u.Viewed = slices.DeleteFunc(u.Viewed, func(x viewedItem) bool { return x.Item == item })
	}
}

// rememberView records the price the user saw for item (the latest).
func (u *userState) rememberView(item string, price float64, ts int64) {
	for i := range u.Viewed {
		if u.Viewed[i].Item == item {
			if ts >= u.Viewed[i].At {
				u.Viewed[i].Price, u.Viewed[i].At = price, ts
			}
			return
		}
	}
	u.Viewed = append(u.Viewed, viewedItem{Item: item, Price: price, At: ts})
	if len(u.Viewed) > maxViewed {
		u.Viewed = slices.Delete(u.Viewed, 0, len(u.Viewed)-maxViewed)
	}
}

// countCap returns how many triggers of kind k the user got on day.
func (u *userState) countCap(k uint8, day int64) int64 {
	for _, c := range u.Caps {
		if c.Kind == k && c.Day == day {
			return c.N
		}
	}
	return 0
}

// addCap counts one trigger of kind k on day, forgetting days before
// day−1.
func (u *userState) addCap(k uint8, day int64) {
	u.Caps = slices.DeleteFunc(u.Caps, func(c capCount) bool { return c.Day < day-1 })
	for i := range u.Caps {
		if u.Caps[i].Kind == k && u.Caps[i].Day == day {
			u.Caps[i].N++
			return
		}
	}
	u.Caps = append(u.Caps, capCount{Kind: k, Day: day, N: 1})
	if len(u.Caps) > maxCaps {
		u.Caps = slices.Delete(u.Caps, 0, len(u.Caps)-maxCaps)
	}
}

const dayMs = int64(24 * time.Hour / time.Millisecond)

// utcDay is the UTC day number of a unix ms time.
func utcDay(ms int64) int64 {
	d := ms / dayMs
	if ms < 0 && ms%dayMs != 0 {
		d--
	}
	return d
}
