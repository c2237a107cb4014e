package scorer

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/stream"
)

// A decayed count halves every half-life, whichever order the additions
// come in.
func TestDecayed(t *testing.T) {
	const hl = 1000.0
	var a, b decayed
	a.add(1, 0, hl)
	a.add(1, 1000, hl)
	b.add(1, 1000, hl)
	b.add(1, 0, hl)
	for _, d := range []decayed{a, b} {
		if got := d.at(1000, hl); math.Abs(got-1.5) > 1e-12 {
			t.Fatalf("value at 1000 = %v, want 1.5", got)
		}
		if got := d.at(3000, hl); math.Abs(got-0.375) > 1e-12 {
			t.Fatalf("value two half-lives later = %v, want 0.375", got)
		}
	}
}

func randomItems(r *rand.Rand, cfg ItemsConfig, n int) *itemTable {
	t := newItemTable(cfg)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	types := []stream.EventType{stream.TypeView, stream.TypeView, stream.TypeView, stream.TypeCart, stream.TypePurchase, stream.TypeReview}
	recent := map[string][]string{}
	for i := 0; i < n; i++ {
		u := "u" + strconv.Itoa(r.IntN(200))
		item := "i" + strconv.Itoa(int(math.Abs(r.NormFloat64()*300)))
		cat := "c" + strconv.Itoa(len(item)%7) + "." + item[len(item)-1:]
		ts := t0 + int64(i)*60000
		typ := types[r.IntN(len(types))]
		t.observe(item, cat, typ, 10+r.Float64()*90, ts, recent[u])
		if typ == stream.TypeView {
			recent[u] = pushBounded(recent[u], item, maxRecent)
			t.watch(item, u, ts)
		}
	}
	return t
}

// However long the stream, every structure stays within its bound.
func TestItemTableBounds(t *testing.T) {
	cfg := ItemsConfig{MaxItems: 100, Neighbours: 4, Watchers: 3, PerCategory: 5, MaxCategories: 6}.withDefaults()
	tab := randomItems(rand.New(rand.NewPCG(1, 1)), cfg, 20000)
	if len(tab.m) > cfg.MaxItems || len(tab.cats) > cfg.MaxCategories || len(tab.top) > globalTop {
		t.Fatalf("items %d categories %d top %d", len(tab.m), len(tab.cats), len(tab.top))
	}
	for id, st := range tab.m {
		if len(st.Nb) > 2*cfg.Neighbours || len(st.Watch) > cfg.Watchers {
			t.Fatalf("item %s: %d neighbours, %d watchers", id, len(st.Nb), len(st.Watch))
		}
	}
	for c, l := range tab.cats {
		if len(l) > cfg.PerCategory {
			t.Fatalf("category %s holds %d items", c, len(l))
		}
	}
}

// Recommendations never hold an item the user bought, nor one twice; they
// come best first and at most n.
func TestRecommendNeverPurchased(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	tab := randomItems(r, ItemsConfig{}.withDefaults(), 20000)
	ids := make([]string, 0, len(tab.m))
	for id := range tab.m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	pick := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, ids[r.IntN(len(ids))])
		}
		return out
	}
	at := tab.now
	for trial := 0; trial < 300; trial++ {
		var u userState
		u.Purchased = pick(r.IntN(maxPurchased + 1))
		u.Recent, u.Cart, u.Browse = pick(r.IntN(maxRecent+1)), pick(r.IntN(4)), pick(r.IntN(4))
		u.Tokens[0] = []string{"c2.1", "c3.7", "c4.5"}
		first := pick(r.IntN(4))
		n := 1 + r.IntN(12)
		recs, cats := tab.recommend(&u, first, n, at)
		if len(recs) > n || len(cats) > 5 {
			t.Fatalf("%d recommendations for n=%d, %d categories", len(recs), n, len(cats))
		}
		seen := map[string]bool{}
		for i, rc := range recs {
			if u.bought(rc.Item) {
				t.Fatalf("trial %d: recommended %s, which the user bought", trial, rc.Item)
			}
			if seen[rc.Item] {
				t.Fatalf("trial %d: %s recommended twice", trial, rc.Item)
			}
			seen[rc.Item] = true
			if i > 0 && rc.Score > recs[i-1].Score {
				t.Fatalf("trial %d: not ordered: %v", trial, recs)
			}
		}
		for _, f := range first {
			if !u.bought(f) && len(recs) > 0 && !seen[f] && len(first) <= n {
				t.Fatalf("trial %d: the trigger's own item %s is missing from %v", trial, f, recs)
			}
		}
	}
}

// The table decodes to the same items, neighbours and watchers.
func TestItemTableRoundTrip(t *testing.T) {
	cfg := ItemsConfig{MaxItems: 500}.withDefaults()
	tab := randomItems(rand.New(rand.NewPCG(3, 3)), cfg, 5000)
	b := tab.marshal()
	got := newItemTable(cfg)
	if err := got.unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.m, tab.m) || got.now != tab.now {
		t.Fatal("decoded table differs")
	}
	if again := got.marshal(); !slices.Equal(again, b) {
		t.Fatal("re-encoding differs")
	}
	for n := 1; n < len(b); n += 1 + n/10 {
		if err := got.unmarshal(b[:n]); !errors.Is(err, ErrCorrupt) || len(got.m) != 0 {
			t.Fatalf("truncated to %d: err %v, %d items", n, err, len(got.m))
		}
	}
}

func FuzzItemTable(f *testing.F) {
	cfg := ItemsConfig{MaxItems: 50}.withDefaults()
	f.Add(randomItems(rand.New(rand.NewPCG(4, 4)), cfg, 300).marshal())
	f.Add([]byte{itemsFormat, 0, 0, 0, 0, 0})
	f.Add([]byte{itemsFormatV1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tab := newItemTable(cfg)
		if err := tab.unmarshal(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again := newItemTable(cfg)
		if err := again.unmarshal(tab.marshal()); err != nil || !reflect.DeepEqual(again.m, tab.m) {
			t.Fatalf("re-encoding changed the table: %v", err)
		}
		var u userState
		tab.recommend(&u, nil, 5, tab.now)
	})
}

// Co-viewed items rank above merely popular ones, and the trigger's own
// items first.
func TestRecommendOrder(t *testing.T) {
	tab := newItemTable(ItemsConfig{}.withDefaults())
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := 0; i < 50; i++ {
		tab.observe("popular", "c", stream.TypePurchase, 5, t0+int64(i), nil)
	}
	for i := 0; i < 3; i++ {
		tab.observe("a", "c", stream.TypeView, 5, t0+100+int64(i), nil)
		tab.observe("b", "c", stream.TypeView, 5, t0+200+int64(i), []string{"a"})
	}
	var u userState
	u.Tokens[0] = []string{"c"}
	recs, cats := tab.recommend(&u, []string{"a"}, 3, t0+1000)
	var got []string
	for _, r := range recs {
		got = append(got, r.Item+"/"+r.Reason)
	}
	want := []string{"a/trigger", "b/co_viewed", "popular/popular_in_category"}
	if !slices.Equal(got, want) || !slices.Equal(cats, []string{"c"}) {
		t.Fatalf("recommended %v, categories %v; want %v, [c]", got, cats, want)
	}
}
