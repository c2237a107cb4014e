package scorer

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// replaySnapshots builds the snapshot stream of one partition as the
// ingester publishes it (NewSnapshot, Encode, DecodeSnapshot): users
// viewing, carting and buying items of a few categories, out of order by
// up to a minute, with producer retries.
func replaySnapshots(t testing.TB, r *rand.Rand, n int) []features.Snapshot {
	t.Helper()
	cfg := features.Config{}.WithDefaults()
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	types := []stream.EventType{stream.TypeView, stream.TypeView, stream.TypeView, stream.TypeView, stream.TypeCart, stream.TypePurchase, stream.TypeReview}
	states := map[string]*features.State{}
	var out []features.Snapshot
	for i := 0; i < n; i++ {
		u := fmt.Sprint("u", r.IntN(40))
		item := fmt.Sprint("i", r.IntN(120))
		price := float64(10 + r.IntN(90))
		ev := stream.Event{Schema: 1, EventID: fmt.Sprint("e", i), Type: types[r.IntN(len(types))], UserID: u,
			TS: base.Add(time.Duration(i)*time.Second - time.Duration(r.IntN(60000))*time.Millisecond), ItemID: item,
			Category: fmt.Sprint("c", len(item)%5, ".", item[len(item)-1:]), Price: &price, PriceMicros: int64(price * 1e6), Quantity: 1}
		st := states[u]
		if st == nil {
			st = &features.State{}
			states[u] = st
		}
		if st.Apply(&ev, features.Env{Cfg: &cfg}) != features.Applied {
			continue
		}
		snap := features.NewSnapshot(&ev, u, st, &cfg, features.SnapshotSource{Topic: "clickstream", Offset: int64(i)})
		b, err := snap.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if snap, err = features.DecodeSnapshot(b); err != nil {
			t.Fatal(err)
		}
		out = append(out, snap)
	}
	return out
}

// The item table is a function of the snapshot stream: learning it in one
// go, or restoring the table saved after any prefix and relearning the
// rest (what a restarted scorer does), gives the same table and the same
// recommendations.
func TestItemTableRestoredAndRelearntEqualsUninterrupted(t *testing.T) {
	cfg := ItemsConfig{MaxItems: 80, Neighbours: 4, PerCategory: 5, MaxCategories: 6}.withDefaults()
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 31))
			snaps := replaySnapshots(t, r, 3000)
			learnAll := func(tab *itemTable, snaps []features.Snapshot) {
				e := &engine{items: tab}
				for i := range snaps {
					e.learn(&snaps[i])
				}
			}
			want := newItemTable(cfg)
			learnAll(want, snaps)
			for _, cut := range []int{0, 1, len(snaps) / 7, len(snaps) / 2, len(snaps) - 1, len(snaps)} {
				saved := newItemTable(cfg)
				learnAll(saved, snaps[:cut])
				got := newItemTable(cfg)
				if err := got.unmarshal(saved.marshal()); err != nil {
					t.Fatal(err)
				}
				learnAll(got, snaps[cut:])
				requireSameItemTable(t, fmt.Sprintf("saved after %d of %d", cut, len(snaps)), got, want)
			}
		})
	}
}

func requireSameItemTable(t *testing.T, name string, got, want *itemTable) {
	t.Helper()
	if !reflect.DeepEqual(got.m, want.m) || got.now != want.now {
		t.Fatalf("%s: items differ", name)
	}
	if !reflect.DeepEqual(got.cats, want.cats) || !slices.Equal(got.top, want.top) {
		t.Fatalf("%s: popular lists differ:\n%v %v\n%v %v", name, got.cats, got.top, want.cats, want.top)
	}
	for i := 0; i < 40; i++ {
		u := userState{Recent: []string{fmt.Sprint("i", i), fmt.Sprint("i", 3*i)}, Tokens: [len(features.Dims)][]string{{fmt.Sprint("c", i%5, ".", i%10)}}}
		gr, gc := got.recommend(&u, []string{fmt.Sprint("i", 2*i)}, 8, want.now)
		wr, wc := want.recommend(&u, []string{fmt.Sprint("i", 2*i)}, 8, want.now)
		if !reflect.DeepEqual(gr, wr) || !slices.Equal(gc, wc) {
			t.Fatalf("%s: recommendations differ:\n%v %v\n%v %v", name, gr, gc, wr, wc)
		}
	}
}

// A table saved before the popular lists were (format 1) decodes with the
// lists rebuilt from its items.
func TestItemTableFormat1(t *testing.T) {
	cfg := ItemsConfig{MaxItems: 80, Neighbours: 4, PerCategory: 5, MaxCategories: 6}.withDefaults()
	tab := newItemTable(cfg)
	e := &engine{items: tab}
	for _, s := range replaySnapshots(t, rand.New(rand.NewPCG(9, 9)), 1000) {
		e.learn(&s)
	}
	bare := *tab
	bare.cats, bare.top = map[string][]string{}, nil
	b := bare.marshal()
	v1 := append([]byte{itemsFormatV1}, b[1:len(b)-2]...) // without the two empty lists
	got := newItemTable(cfg)
	if err := got.unmarshal(v1); err != nil {
		t.Fatal(err)
	}
	want := *tab
	want.rebuildTops()
	if !reflect.DeepEqual(got.m, tab.m) || !reflect.DeepEqual(got.cats, want.cats) || !slices.Equal(got.top, want.top) {
		t.Fatal("format 1 table decoded differently")
	}
}
