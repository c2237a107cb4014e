package features_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/features/featurestest"
	"github.com/streamprofile/streamprofile/stream"
)

// stream simulates one partition: watermark, late-drop and Apply.
func runStream(t testing.TB, evs []stream.Event, cfg features.Config) (map[string]*features.State, []stream.Event) {
	t.Helper()
	wm := stream.NewWatermark(cfg.AllowedLateness, 0)
	states := map[string]*features.State{}
	var accepted []stream.Event
	for i := range evs {
		ev := &evs[i]
		st := states[ev.ProfileKey()]
		if st == nil {
			st = &features.State{}
			states[ev.ProfileKey()] = st
		}
		if st.IsDuplicate(ev.EventID) {
			continue
		}
		ts := ev.TS.UnixMilli()
		if wm.Late(ts) {
			continue
		}
		wm.Observe(ts)
		if st.Apply(ev, features.Env{Cfg: &cfg, Watermark: wm.Current()}) == features.Applied {
			accepted = append(accepted, *ev)
		}
	}
	return states, accepted
}

func price(p float64) *float64 { return &p }

// genEvents builds a random clickstream: users, sessions with and without
// ids, every event type, duplicates, and times jittered so events arrive out
// of order by up to jitter.
func genEvents(r *rand.Rand, n, users int, span, jitter time.Duration) []stream.Event {
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	types := []stream.EventType{stream.TypeView, stream.TypeView, stream.TypeView, stream.TypeCart, stream.TypePurchase,
		stream.TypeSearch, stream.TypeReview, stream.TypeRemoveFromCart}
	cats := []string{"electronics.smartphone", "electronics.audio.headphone", "appliances.kitchen", "apparel.shoes", ""}
	brands := []string{"samsung", "apple", "xiaomi", "", "bosch"}
	var out []stream.Event
	for i := 0; i < n; i++ {
		at := base.Add(time.Duration(float64(span) * float64(i) / float64(n)))
		at = at.Add(-time.Duration(r.Int64N(int64(jitter) + 1)))
		u := fmt.Sprintf("u%d", r.IntN(users))
		ev := stream.Event{Schema: 1, EventID: fmt.Sprintf("e%d", i), Type: types[r.IntN(len(types))], UserID: u, TS: at.Truncate(time.Millisecond), Quantity: 1}
		if r.IntN(3) > 0 {
			ev.SessionID = fmt.Sprintf("%s-s%d", u, r.IntN(4))
		}
		ev.ItemID = fmt.Sprintf("i%d", r.IntN(50))
		ev.Category = cats[r.IntN(len(cats))]
		ev.Brand = brands[r.IntN(len(brands))]
		p := float64(r.IntN(100000)) / 100
		ev.Price = price(p)
		ev.PriceMicros = int64(p*100+0.5) * 10000
		switch ev.Type {
		case stream.TypePurchase:
			ev.Quantity = 1 + r.IntN(3)
		case stream.TypeSearch:
			ev.Query = []string{"red shoes", "iPhone 15 case", "kitchen mixer", "a b"}[r.IntN(4)]
			ev.ItemID, ev.Price, ev.PriceMicros = "", nil, 0
		}
		out = append(out, ev)
		if r.IntN(20) == 0 { // a producer retry: same event again, later
			out = append(out, ev)
		}
	}
	return out
}

func compare(t *testing.T, states map[string]*features.State, accepted []stream.Event, at time.Time, cfg features.Config) {
	t.Helper()
	want := featurestest.Recompute(accepted, at, cfg)
	if len(want) != len(states) {
		t.Fatalf("%d users streamed, %d recomputed", len(states), len(want))
	}
	for u, st := range states {
		got := st.Evaluate(at, &cfg)
		if d := featurestest.Diff(got, want[u], 1e-9); len(d) > 0 {
			t.Fatalf("user %s differs from batch recomputation:\n%v", u, d)
		}
	}
}

func TestStreamingEqualsBatchRecomputation(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			span := []time.Duration{3 * time.Hour, 10 * 24 * time.Hour, 90 * 24 * time.Hour}[seed%3]
			evs := genEvents(r, 3000, 40, span, 0)
			states, accepted := runStream(t, evs, cfg)
			if len(accepted) == 0 {
				t.Fatal("nothing accepted")
			}
			last := accepted[len(accepted)-1].TS
			for _, at := range []time.Time{last, last.Add(45 * time.Minute), last.Add(3 * 24 * time.Hour)} {
				compare(t, states, accepted, at, cfg)
			}
		})
	}
}

// Out-of-order arrival within the allowed lateness gives the same features
// as in-order arrival.
func TestOutOfOrderWithinLatenessEqualsInOrder(t *testing.T) {
	cfg := features.Config{AllowedLateness: 10 * time.Minute}.WithDefaults()
	for seed := uint64(1); seed <= 10; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		evs := genEvents(r, 2000, 25, 48*time.Hour, 9*time.Minute)
		// In order: sort a copy by time.
		sorted := append([]stream.Event(nil), evs...)
		sortByTime(sorted)
		inOrder, accIn := runStream(t, sorted, cfg)
		outOfOrder, accOut := runStream(t, evs, cfg)
		if len(accIn) != len(accOut) {
			t.Fatalf("seed %d: %d accepted in order, %d out of order (all are within lateness)", seed, len(accIn), len(accOut))
		}
		at := sorted[len(sorted)-1].TS
		for u, st := range inOrder {
			a := st.Evaluate(at, &cfg)
			b := outOfOrder[u].Evaluate(at, &cfg)
			if d := featurestest.Diff(b, a, 1e-9); len(d) > 0 {
				t.Fatalf("seed %d user %s: out-of-order differs from in-order: %v", seed, u, d)
			}
		}
		compare(t, outOfOrder, accOut, at, cfg)
	}
}

func sortByTime(evs []stream.Event) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].TS.Before(evs[j-1].TS); j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}

// Events older than the watermark are rejected by the processor; the
// features of what was accepted still match.
func TestLateEventsBeyondLatenessAreNotApplied(t *testing.T) {
	cfg := features.Config{AllowedLateness: time.Minute}.WithDefaults()
	r := rand.New(rand.NewPCG(3, 3))
	evs := genEvents(r, 2000, 10, 24*time.Hour, 30*time.Minute)
	states, accepted := runStream(t, evs, cfg)
	if len(accepted) >= len(evs)*95/100 {
		t.Fatalf("expected many late events with 30m jitter and 1m lateness; accepted %d of %d", len(accepted), len(evs))
	}
	compare(t, states, accepted, accepted[len(accepted)-1].TS.Add(time.Hour), cfg)
}

func TestDuplicateEventIDsAreAppliedOnce(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	ev := stream.Event{Schema: 1, EventID: "x", Type: stream.TypePurchase, UserID: "u", TS: time.Unix(1700000000, 0), ItemID: "i", Price: price(10), PriceMicros: 10e6, Quantity: 2}
	var st features.State
	env := features.Env{Cfg: &cfg}
	if got := st.Apply(&ev, env); got != features.Applied {
		t.Fatalf("first apply: %v", got)
	}
	if got := st.Apply(&ev, env); got != features.Duplicate {
		t.Fatalf("second apply: %v, want Duplicate", got)
	}
	v := st.Evaluate(ev.TS, &cfg).Vector
	if v[features.PurchasesTotal] != 1 || v[features.RevenueTotal] != 20 || v[features.UnitsTotal] != 2 {
		t.Fatalf("purchases %v revenue %v units %v", v[features.PurchasesTotal], v[features.RevenueTotal], v[features.UnitsTotal])
	}
}

func TestWindowsAtBucketGranularity(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	base := time.Date(2024, 1, 1, 12, 0, 30, 0, time.UTC)
	var st features.State
	add := func(id string, at time.Time) {
		ev := stream.Event{Schema: 1, EventID: id, Type: stream.TypeView, UserID: "u", TS: at, ItemID: "i"}
		st.Apply(&ev, features.Env{Cfg: &cfg})
	}
	add("a", base)                      // bucket 12:00
	add("b", base.Add(-59*time.Minute)) // bucket 11:01: inside 1h at 12:00
	add("c", base.Add(-61*time.Minute)) // bucket 10:59: outside
	add("d", base.Add(-23*time.Hour))   // inside 24h
	add("e", base.Add(-6*24*time.Hour)) // inside 7d
	add("f", base.Add(-8*24*time.Hour)) // outside 7d
	add("g", base.Add(-60*time.Minute)) // bucket 11:00, the 61st bucket back: outside 1h
	tests := []struct {
		at             time.Time
		v1h, v24h, v7d float64
	}{
		{base, 2, 5, 6},
		{base.Add(29 * time.Second), 2, 5, 6}, // same minute bucket
		{base.Add(30 * time.Second), 1, 5, 6}, // next minute: "b" at 11:01:30 drops out
		{base.Add(2 * time.Hour), 0, 4, 6},
	}
	for _, tc := range tests {
		v := st.Evaluate(tc.at, &cfg).Vector
		if v[features.Views1h] != tc.v1h || v[features.Views24h] != tc.v24h || v[features.Views7d] != tc.v7d {
			t.Errorf("at %s: views_1h %v views_24h %v views_7d %v, want %v %v %v", tc.at.Format(time.TimeOnly),
				v[features.Views1h], v[features.Views24h], v[features.Views7d], tc.v1h, tc.v24h, tc.v7d)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	r := rand.New(rand.NewPCG(5, 5))
	states, _ := runStream(t, genEvents(r, 3000, 20, 72*time.Hour, 5*time.Minute), cfg)
	at := time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)
	for u, st := range states {
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back features.State
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if a, c := st.Evaluate(at, &cfg), back.Evaluate(at, &cfg); fmt.Sprint(a) != fmt.Sprint(c) {
			t.Fatalf("%s: round trip changed the profile\n%v\n%v", u, a, c)
		}
		b2, _ := back.MarshalBinary()
		if string(b) != string(b2) {
			t.Fatalf("%s: re-encoding differs", u)
		}
	}
}

func FuzzStateUnmarshal(f *testing.F) {
	cfg := features.Config{}.WithDefaults()
	r := rand.New(rand.NewPCG(9, 9))
	states, _ := runStream(f, genEvents(r, 300, 3, time.Hour, time.Minute), cfg)
	for _, st := range states {
		b, _ := st.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var st features.State
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		// Anything accepted evaluates and re-encodes without panicking.
		st.Evaluate(time.Unix(1700000000, 0), &cfg)
		if _, err := st.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}
