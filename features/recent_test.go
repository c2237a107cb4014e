package features_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// recentByBruteForce is the specification of State.Recent: of the given
// views, each distinct item at the time of its latest view, the n latest by
// (time, item id), oldest first.
func recentByBruteForce(views []stream.Event, n int) []features.RecentView {
	latest := map[string]int64{}
	for _, ev := range views {
		if ev.Type != stream.TypeView || ev.ItemID == "" {
			continue
		}
		t := ev.TS.UnixMilli()
		if old, ok := latest[ev.ItemID]; !ok || t > old {
			latest[ev.ItemID] = t
		}
	}
	var out []features.RecentView
	for it, t := range latest {
		out = append(out, features.RecentView{Item: it, Ts: t})
	}
	slices.SortFunc(out, func(a, b features.RecentView) int {
		return cmp.Or(cmp.Compare(a.Ts, b.Ts), cmp.Compare(a.Item, b.Item))
	})
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func items(vs []features.RecentView) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Item)
	}
	return out
}

// State.Recent is the latest RecentViews+1 viewed items whatever the
// arrival order, and after each view the snapshot's Recent lists the
// latest RecentViews other items among the views applied before it.
func TestRecentViewsSpecification(t *testing.T) {
	cfg := features.Config{AllowedLateness: 10 * time.Minute}.WithDefaults()
	for seed := uint64(1); seed <= 10; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 13))
			evs := genEvents(r, 1500, 6, 6*time.Hour, 9*time.Minute)
			states := map[string]*features.State{}
			applied := map[string][]stream.Event{}
			for i := range evs {
				ev := &evs[i]
				u := ev.ProfileKey()
				st := states[u]
				if st == nil {
					st = &features.State{}
					states[u] = st
				}
				if st.Apply(ev, features.Env{Cfg: &cfg}) != features.Applied {
					continue
				}
				before := applied[u]
				applied[u] = append(before, *ev)
				if got, want := st.Recent, recentByBruteForce(applied[u], features.RecentViews+1); !slices.Equal(got, want) {
					t.Fatalf("event %d: Recent %v, want %v", i, got, want)
				}
				snap := features.NewSnapshot(ev, u, st, &cfg, features.SnapshotSource{})
				var want []string
				if ev.Type == stream.TypeView && ev.ItemID != "" {
					others := slices.DeleteFunc(slices.Clone(before), func(x stream.Event) bool { return x.ItemID == ev.ItemID })
					want = items(recentByBruteForce(others, features.RecentViews))
				}
				if len(want) == 0 {
					want = nil
				}
				if !slices.Equal(snap.Recent, want) {
					t.Fatalf("event %d (%s %s): snapshot recent %v, want %v", i, ev.Type, ev.ItemID, snap.Recent, want)
				}
			}
			// Arrival order does not matter: the same events in time
			// order (and in reverse) give the same lists.
			for u, evs := range applied {
				for _, order := range []func(a, b stream.Event) int{
					func(a, b stream.Event) int { return a.TS.Compare(b.TS) },
					func(a, b stream.Event) int { return b.TS.Compare(a.TS) },
				} {
					sorted := slices.Clone(evs)
					slices.SortStableFunc(sorted, order)
					var st features.State
					for i := range sorted {
						st.Apply(&sorted[i], features.Env{Cfg: &cfg})
					}
					if !slices.Equal(st.Recent, states[u].Recent) {
						t.Fatalf("user %s: Recent %v in another order, %v as streamed", u, st.Recent, states[u].Recent)
					}
				}
			}
		})
	}
}

// Merging two profiles gives the recent views of one profile holding both
// profiles' events.
func TestMergeRecentViews(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	env := features.Env{Cfg: &cfg}
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 17))
		evs := genEvents(r, 60, 1, time.Hour, 5*time.Minute)
		var a, b, one features.State
		for i := range evs {
			one.Apply(&evs[i], env)
			if r.IntN(2) == 0 {
				a.Apply(&evs[i], env)
			} else {
				b.Apply(&evs[i], env)
			}
		}
		a.Merge(&b, env)
		if !slices.Equal(a.Recent, one.Recent) {
			t.Fatalf("seed %d: merged Recent %v, one profile %v", seed, a.Recent, one.Recent)
		}
	}
}

func TestRecentViewsErasedWithProfilingWithdrawal(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	env := features.Env{Cfg: &cfg}
	var st features.State
	at := time.Unix(1700000000, 0)
	view := stream.Event{Schema: 1, EventID: "v", Type: stream.TypeView, UserID: "u", TS: at, ItemID: "i"}
	st.Apply(&view, env)
	if len(st.Recent) != 1 {
		t.Fatalf("Recent %v after a view", st.Recent)
	}
	no := false
	withdraw := stream.Event{Schema: 1, EventID: "c", Type: stream.TypeConsent, UserID: "u", TS: at.Add(time.Second), Consent: &stream.Consent{Profiling: &no}}
	st.Apply(&withdraw, env)
	if st.Recent != nil {
		t.Fatalf("Recent %v after profiling was withdrawn", st.Recent)
	}
}

// A state encoded before Recent existed (format 1) still decodes, with no
// recent views; the current format round-trips them.
func TestCodecRecentViewsAndFormat1(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	var st features.State
	at := time.Unix(1700000000, 0)
	for i := 0; i < 9; i++ {
		ev := stream.Event{Schema: 1, EventID: fmt.Sprint("v", i), Type: stream.TypeView, UserID: "u", TS: at.Add(time.Duration(i%4) * time.Second), ItemID: fmt.Sprint("i", i)}
		st.Apply(&ev, features.Env{Cfg: &cfg})
	}
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back features.State
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Recent, st.Recent) || len(st.Recent) != features.RecentViews+1 {
		t.Fatalf("Recent %v decoded as %v", st.Recent, back.Recent)
	}
	// Format 1: the same fields without the trailing recent list.
	noRecent := st
	noRecent.Recent = nil
	b, _ = noRecent.MarshalBinary()
	v1 := append([]byte{1}, b[1:len(b)-1]...) // drop the empty list's count
	var old features.State
	if err := old.UnmarshalBinary(v1); err != nil {
		t.Fatalf("format 1: %v", err)
	}
	if old.Recent != nil || old.Views != st.Views || !slices.Equal(old.Items, st.Items) {
		t.Fatalf("format 1 decoded wrong: %+v", old)
	}
	// Format 1 with trailing bytes (a format 2 body) is rejected.
	if err := old.UnmarshalBinary(append([]byte{1}, b[1:]...)); err == nil {
		t.Fatal("format 1 with trailing bytes decoded")
	}
}

func TestDecodeSnapshotVersions(t *testing.T) {
	base := features.Snapshot{ID: "e", User: "u", TS: time.Unix(1700000000, 0).UTC(), Type: "view", ItemID: "i"}
	tests := []struct {
		name    string
		version int
		recent  []string
		ok      bool
	}{
		{"version 1, no recent items", features.SnapshotVersionNoRecent, nil, true},
		{"current version", features.SnapshotVersion, []string{"a", "b"}, true},
		{"current version, five recent items", features.SnapshotVersion, []string{"a", "b", "c", "d", "e"}, true},
		{"too many recent items", features.SnapshotVersion, []string{"a", "b", "c", "d", "e", "f"}, false},
		{"unknown version", features.SnapshotVersion + 1, nil, false},
		{"version 0", 0, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			s.Version, s.Recent = tc.version, tc.recent
			b, err := s.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := features.DecodeSnapshot(b)
			if (err == nil) != tc.ok {
				t.Fatalf("error %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !slices.Equal(got.Recent, tc.recent) {
				t.Fatalf("recent %v, want %v", got.Recent, tc.recent)
			}
		})
	}
}
