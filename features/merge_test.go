package features_test

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/features/featurestest"
	"github.com/streamprofile/streamprofile/stream"
)

// A person's events split between two profiles (anonymous and known) and
// merged give the features of one profile holding all the events.
func TestMergeEqualsOneProfile(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	for seed := uint64(1); seed <= 15; seed++ {
		r := rand.New(rand.NewPCG(seed, 21))
		span := []time.Duration{3 * time.Hour, 5 * 24 * time.Hour, 60 * 24 * time.Hour}[seed%3]
		evs := genEvents(r, 2000, 8, span, 5*time.Minute)
		// Move a share of each user's events to their anonymous id; the
		// copies of one event id stay together.
		split := make([]stream.Event, len(evs))
		for i, ev := range evs {
			h := fnv.New32a()
			h.Write([]byte(ev.EventID))
			if h.Sum32()%3 == 0 {
				ev.AnonymousID = "anon-" + ev.UserID
				ev.UserID = ""
			}
			split[i] = ev
		}
		states, accepted := runStream(t, split, cfg)
		at := accepted[len(accepted)-1].TS.Add(time.Hour)
		env := features.Env{Cfg: &cfg}
		merged := map[string]*features.State{}
		for id, st := range states {
			u, isAnon := id, false
			if len(id) > 5 && id[:5] == "anon-" {
				u, isAnon = id[5:], true
			}
			if merged[u] == nil {
				merged[u] = &features.State{}
			}
			cp := *st
			merged[u].Merge(&cp, env)
			if isAnon {
				merged[u].Link(id)
			}
		}
		var all []stream.Event
		for _, ev := range accepted {
			if ev.UserID == "" {
				ev.UserID, ev.AnonymousID = ev.AnonymousID[5:], ""
			}
			all = append(all, ev)
		}
		want := featurestest.Recompute(all, at, cfg)
		sessionFeatures := []features.ID{features.SessionsTotal, features.CartSessions, features.AbandonedCartSessions, features.CartAbandonRate}
		for u, st := range merged {
			got := st.Evaluate(at, &cfg)
			// Sessions that each profile had already closed (the
			// watermark passed them by more than the gap) stay separate
			// sessions after the merge; live ones merge. So the merged
			// count lies between one profile's count and the sum of both.
			sep := states[u].Evaluate(at, &cfg).Vector[features.SessionsTotal]
			if a := states["anon-"+u]; a != nil {
				sep += a.Evaluate(at, &cfg).Vector[features.SessionsTotal]
			}
			if g, w := got.Vector[features.SessionsTotal], want[u].Vector[features.SessionsTotal]; g < w || g > sep {
				t.Fatalf("seed %d user %s: merged sessions %v outside [%v, %v]", seed, u, g, w, sep)
			}
			for _, id := range sessionFeatures {
				got.Vector[id] = want[u].Vector[id]
			}
			if d := featurestest.Diff(got, want[u], 1e-9); len(d) > 0 {
				t.Fatalf("seed %d user %s: merged profile differs from one profile: %v", seed, u, d)
			}
		}
	}
}

// Merging is idempotent only through event ids: the pipeline merges a
// handed-over state once (its merge id is remembered). Merging twice double
// counts, which this test pins down so the pipeline's guard stays needed.
func TestMergeTwiceDoubleCounts(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	var a, b features.State
	ev := stream.Event{Schema: 1, EventID: "x", Type: stream.TypeView, AnonymousID: "a", TS: time.Unix(1700000000, 0), ItemID: "i"}
	a.Apply(&ev, features.Env{Cfg: &cfg})
	b.Merge(&a, features.Env{Cfg: &cfg})
	b.Merge(&a, features.Env{Cfg: &cfg})
	if v := b.Evaluate(ev.TS, &cfg).Vector[features.ViewsTotal]; v != 2 {
		t.Fatalf("views_total %v after merging twice; the pipeline relies on merge ids", v)
	}
	if !b.IsDuplicate("x") {
		t.Fatal("event ids of the merged state must be remembered")
	}
}

func TestConsentWithdrawalErasesAndSuppresses(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	env := features.Env{Cfg: &cfg}
	no, yes := false, true
	var st features.State
	at := time.Unix(1700000000, 0)
	for i := 0; i < 3; i++ {
		ev := stream.Event{Schema: 1, EventID: fmt.Sprint("v", i), Type: stream.TypeView, UserID: "u", TS: at.Add(time.Duration(i) * time.Second), ItemID: "i", Category: "a.b"}
		st.Apply(&ev, env)
	}
	withdraw := stream.Event{Schema: 1, EventID: "c1", Type: stream.TypeConsent, UserID: "u", TS: at.Add(time.Minute), Consent: &stream.Consent{Profiling: &no}}
	st.Apply(&withdraw, env)
	if !st.Empty() || st.Evaluate(at.Add(time.Hour), &cfg).Vector[features.ViewsTotal] != 0 || len(st.Aff[0].Entries) != 0 {
		t.Fatal("withdrawing profiling must erase derived data")
	}
	later := stream.Event{Schema: 1, EventID: "v9", Type: stream.TypeView, UserID: "u", TS: at.Add(2 * time.Minute), ItemID: "i"}
	if got := st.Apply(&later, env); got != features.Suppressed {
		t.Fatalf("event after withdrawal: %v, want Suppressed", got)
	}
	again := stream.Event{Schema: 1, EventID: "c2", Type: stream.TypeConsent, UserID: "u", TS: at.Add(3 * time.Minute), Consent: &stream.Consent{Profiling: &yes}}
	st.Apply(&again, env)
	later2 := stream.Event{Schema: 1, EventID: "v10", Type: stream.TypeView, UserID: "u", TS: at.Add(4 * time.Minute), ItemID: "i"}
	if got := st.Apply(&later2, env); got != features.Applied {
		t.Fatalf("event after renewed consent: %v, want Applied", got)
	}
}
