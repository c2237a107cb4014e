package trainer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/stream"
)

// Consent snapshots are neither examples nor labels: none is learnt, none
// labels or matures another example (not even one far ahead in event
// time), and they are counted apart from the snapshots. A profiling
// withdrawal drops the user's pending examples, which would otherwise
// mature as negatives; other users' examples are learnt as usual.
func TestConsentSnapshotsAreNotLearnt(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	snap := func(id, user string, typ stream.EventType, at time.Duration) features.Snapshot {
		ts := t0.Add(at)
		return features.Snapshot{Version: features.SnapshotVersion, ID: id, User: user, TS: ts, Type: string(typ),
			Features: map[string]float64{"last_seen": float64(ts.Unix()), "views_total": 1}}
	}
	consent := func(id, user string, at time.Duration, adsOff, profilingOff bool) features.Snapshot {
		return features.Snapshot{Version: features.SnapshotVersion, ID: id, User: user, TS: t0.Add(at), Type: string(stream.TypeConsent),
			Features: map[string]float64{}, AdsOff: adsOff, ProfilingOff: profilingOff}
	}
	var trained []Trained
	tr := newTrainer(t, Config{Arch: smallArch(inputs.HeadPurchase), BatchSize: 1,
		OnTrain: func(b []Trained) { trained = append(trained, b...) }}, newRegistry(t))
	// One partition: the order below is the arrival order.
	first := []features.Snapshot{
		snap("a-view", "u-a", stream.TypeView, 0),
		consent("a-ads", "u-a", time.Minute, true, false),
		snap("p-view-1", "u-p", stream.TypeView, 0),
		snap("p-view-2", "u-p", stream.TypeView, time.Minute),
		// Far ahead in event time: had it moved the watermark, every
		// example above would have matured (negative).
		consent("b-ads", "u-b", 5*time.Hour, true, false),
	}
	feed(t, tr, first, 1, nil)
	if st := tr.Stats(); st.Pending != 3 || st.Snapshots != 3 || st.ConsentSnapshots != 2 {
		t.Fatalf("after the first snapshots: pending %d, snapshots %d, consent %d; want 3, 3, 2", st.Pending, st.Snapshots, st.ConsentSnapshots)
	}
	if n := tr.Holds("u-p"); n != 2 {
		t.Fatalf("u-p: %d examples held, want 2", n)
	}
	second := []features.Snapshot{
		consent("p-off", "u-p", 2*time.Minute, false, true),
		snap("a-buy", "u-a", stream.TypePurchase, 5*time.Minute),
	}
	feed(t, tr, second, 1, map[int]int64{0: int64(len(first))})
	if n := tr.Holds("u-p"); n != 0 {
		t.Errorf("u-p withdrew profiling consent: %d examples still held", n)
	}
	all := withFlush(slices.Concat(first, second), 1, 3*time.Hour)
	feed(t, tr, all[len(first)+len(second):], 1, map[int]int64{0: int64(len(first) + len(second))})
	if _, err := tr.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	labels := map[string]float64{}
	for _, x := range trained {
		labels[x.ID] = x.Label
	}
	if l, ok := labels["a-view"]; !ok || l != 1 {
		t.Errorf("a-view: learnt %v with label %v; want learnt, positive", ok, l)
	}
	for _, id := range []string{"a-ads", "b-ads", "p-off", "p-view-1", "p-view-2"} {
		if _, ok := labels[id]; ok {
			t.Errorf("%s learnt", id)
		}
	}
	if st := tr.Stats(); st.ConsentSnapshots != 3 || st.Snapshots != 3+2 {
		t.Errorf("stats: consent %d, snapshots %d; want 3 and 5", st.ConsentSnapshots, st.Snapshots)
	}
}
