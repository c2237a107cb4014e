package scorer

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

func randomState(r *rand.Rand) userState {
	str := func() string { return "i" + strconv.Itoa(r.IntN(50)) }
	strs := func(n int) []string {
		var out []string
		for i := 0; i < r.IntN(n+1); i++ {
			out = append(out, str())
		}
		return out
	}
	u := userState{LastTS: r.Int64N(2e12), LastType: "view", AdsOff: r.IntN(2) == 0, Model: r.Int64N(100),
		EvalAt: r.Int64N(2e12), Due: r.Int64N(2e12), CartAt: r.Int64N(2e12), BrowseAt: r.Int64N(2e12),
		BrowseScore: r.Float64(), WinBackFor: r.Int64N(2e12)}
	for i := range u.Vec {
		u.Vec[i] = r.NormFloat64() * 100
	}
	for i := range u.Tokens {
		u.Tokens[i] = strs(5)
	}
	for i := range u.Net {
		u.Net[i] = r.Float64()
	}
	if r.IntN(3) == 0 {
		u.Net[headRepeat] = math.NaN()
	}
	for h := range u.Explain {
		for i := 0; i < r.IntN(6); i++ {
			u.Explain[h] = append(u.Explain[h], contribution{Input: str(), Delta: r.NormFloat64()})
		}
	}
	u.Cart, u.Browse, u.Purchased, u.Recent = strs(maxCart), strs(maxBrowse), strs(maxPurchased), strs(maxRecent)
	for i := 0; i < r.IntN(maxViewed+1); i++ {
		u.Viewed = append(u.Viewed, viewedItem{Item: str(), Price: r.Float64() * 100, At: r.Int64N(2e12)})
	}
	for i := 0; i < r.IntN(maxCaps+1); i++ {
		u.Caps = append(u.Caps, capCount{Kind: uint8(r.IntN(len(Kinds()))), Day: r.Int64N(30000), N: r.Int64N(5)})
	}
	return u
}

// equalState compares two states, NaN equal to NaN.
func equalState(a, b userState) bool {
	for i := range a.Net {
		if math.IsNaN(a.Net[i]) != math.IsNaN(b.Net[i]) {
			return false
		}
		if math.IsNaN(a.Net[i]) {
			a.Net[i], b.Net[i] = 0, 0
		}
	}
	return reflect.DeepEqual(a, b)
}

// Every state decodes to itself.
func TestUserStateRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		u := randomState(r)
		b := u.marshal(nil)
		var got userState
		if err := got.unmarshal(b); err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		if !equalState(u, got) {
			t.Fatalf("state %d: decoded %+v\nwant %+v", i, got, u)
		}
	}
	var empty userState
	if err := empty.unmarshal(nil); err != nil || !math.IsNaN(empty.Net[0]) || empty.LastTS != 0 {
		t.Fatalf("empty input: %v, %+v", err, empty)
	}
}

// Truncations and corruptions are errors wrapping ErrCorrupt, never
// panics, and leave the empty state.
func TestUserStateRejectsCorruption(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	st := randomState(r)
	b := st.marshal(nil)
	for n := 1; n < len(b); n++ {
		var u userState
		if err := u.unmarshal(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err %v", n, err)
		}
		if u.LastTS != 0 || !math.IsNaN(u.Net[0]) {
			t.Fatalf("truncated state not reset: %+v", u)
		}
	}
	for _, bad := range [][]byte{{2}, append(append([]byte{}, b...), 0)} {
		var u userState
		if err := u.unmarshal(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%x: err %v", bad[:1], err)
		}
	}
}

func FuzzUserState(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 4; i++ {
		st := randomState(r)
		f.Add(st.marshal(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{stateFormat})
	f.Fuzz(func(t *testing.T, b []byte) {
		var u userState
		if err := u.unmarshal(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		var again userState
		if err := again.unmarshal(u.marshal(nil)); err != nil || !equalState(u, again) {
			t.Fatalf("re-encoding changed the state: %v", err)
		}
	})
}

func snap(typ stream.EventType, item string, price float64, at time.Time) *features.Snapshot {
	return &features.Snapshot{Version: 1, ID: "e", User: "u", TS: at, Type: string(typ), ItemID: item, Price: price}
}

// What each event does to the trigger lists.
func TestUserStateObserve(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	type step struct {
		typ   stream.EventType
		item  string
		price float64
	}
	cases := []struct {
		name                 string
		steps                []step
		cart, viewed, bought []string
		cartOpen             bool
	}{
		{"views remember prices", []step{{stream.TypeView, "a", 10}, {stream.TypeView, "b", 0}, {stream.TypeView, "c", 5}},
			nil, []string{"a", "c"}, nil, false},
		{"cart opens, removal of the last item closes", []step{{stream.TypeCart, "a", 10}, {stream.TypeCart, "b", 1}, {stream.TypeRemoveFromCart, "a", 0}},
			[]string{"b"}, nil, nil, true},
		{"remove last closes", []step{{stream.TypeCart, "a", 10}, {stream.TypeRemoveFromCart, "a", 0}}, nil, nil, nil, false},
		{"purchase closes the cart and forgets the price", []step{{stream.TypeView, "a", 10}, {stream.TypeCart, "a", 10}, {stream.TypePurchase, "a", 10}},
			nil, nil, []string{"a"}, false},
		{"bought items are not watched", []step{{stream.TypePurchase, "a", 10}, {stream.TypeView, "a", 8}}, nil, nil, []string{"a"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var u userState
			for i, s := range c.steps {
				sn := snap(s.typ, s.item, s.price, t0.Add(time.Duration(i)*time.Minute))
				v := sn.Vector()
				u.observe(sn, &v)
			}
			var viewed []string
			for _, x := range u.Viewed {
				viewed = append(viewed, x.Item)
			}
			if !reflect.DeepEqual(u.Cart, c.cart) && !(len(u.Cart) == 0 && len(c.cart) == 0) {
				t.Errorf("cart %v, want %v", u.Cart, c.cart)
			}
			if !reflect.DeepEqual(viewed, c.viewed) {
				t.Errorf("viewed %v, want %v", viewed, c.viewed)
			}
			if !reflect.DeepEqual(u.Purchased, c.bought) {
				t.Errorf("bought %v, want %v", u.Purchased, c.bought)
			}
			if (u.CartAt != 0) != c.cartOpen {
				t.Errorf("cart open %v, want %v", u.CartAt != 0, c.cartOpen)
			}
		})
	}
}

// Lists stay bounded, newest kept.
func TestUserStateBounds(t *testing.T) {
	var u userState
	t0 := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 500; i++ {
		for _, typ := range []stream.EventType{stream.TypeView, stream.TypeCart, stream.TypePurchase} {
			sn := snap(typ, "item"+strconv.Itoa(i), 1+float64(i), t0.Add(time.Duration(i)*time.Second))
			v := sn.Vector()
			u.observe(sn, &v)
		}
		u.addCap(uint8(i%len(Kinds())), int64(i/7))
	}
	if len(u.Viewed) > maxViewed || len(u.Purchased) != maxPurchased || len(u.Recent) != maxRecent || len(u.Caps) > maxCaps {
		t.Fatalf("viewed %d purchased %d recent %d caps %d", len(u.Viewed), len(u.Purchased), len(u.Recent), len(u.Caps))
	}
	if u.Purchased[len(u.Purchased)-1] != "item499" || u.Recent[len(u.Recent)-1] != "item499" {
		t.Fatalf("newest not kept: %v %v", u.Purchased[len(u.Purchased)-1:], u.Recent)
	}
}

// Caps count per kind and UTC day; days before yesterday are forgotten.
func TestCaps(t *testing.T) {
	var u userState
	u.addCap(0, 100)
	u.addCap(0, 100)
	u.addCap(1, 100)
	if u.countCap(0, 100) != 2 || u.countCap(1, 100) != 1 || u.countCap(0, 101) != 0 {
		t.Fatalf("caps %+v", u.Caps)
	}
	u.addCap(0, 102)
	if u.countCap(0, 100) != 0 || u.countCap(0, 102) != 1 {
		t.Fatalf("old days kept: %+v", u.Caps)
	}
	for _, c := range []struct{ ms, day int64 }{{0, 0}, {dayMs - 1, 0}, {dayMs, 1}, {-1, -1}, {-dayMs, -1}, {-dayMs - 1, -2}} {
		if got := utcDay(c.ms); got != c.day {
			t.Errorf("utcDay(%d) = %d, want %d", c.ms, got, c.day)
		}
	}
}
