package trainer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/stream"
)

// smallArch keeps the tests fast: the default inputs, a small network.
func smallArch(heads ...string) nn.Arch {
	a := inputs.DefaultArch()
	a.Hidden = []int{16}
	a.HashBuckets = 256
	if len(heads) > 0 {
		a.Heads = heads
	}
	return a
}

// expected computes, independently of the trainer, the purchase-propensity
// label of every snapshot and the offset (in its partition) of the message
// that makes the label known.
func expected(snaps []features.Snapshot, locs [][2]int64, h, lateness time.Duration) (label map[string]float64, knownAt map[string]int64) {
	label, knownAt = map[string]float64{}, map[string]int64{}
	byPart := map[int64][]int{}
	for i, l := range locs {
		byPart[l[0]] = append(byPart[l[0]], i)
	}
	for _, idx := range byPart {
		// Running max event time per position.
		maxTS := make([]int64, len(idx))
		var m int64
		for k, i := range idx {
			m = max(m, snaps[i].TS.UnixMilli())
			maxTS[k] = m
		}
		for k, i := range idx {
			s := &snaps[i]
			if s.Features["last_seen"] > float64(s.TS.Unix()) {
				continue // made from a late event: no example
			}
			t, dl := s.TS.UnixMilli(), s.TS.Add(h).UnixMilli()
			for j := k + 1; j < len(idx); j++ {
				o := &snaps[idx[j]]
				if o.User == s.User && o.Type == string(stream.TypePurchase) && o.TS.UnixMilli() > t && o.TS.UnixMilli() <= dl {
					label[s.ID], knownAt[s.ID] = 1, locs[idx[j]][1]
					break
				}
				if maxTS[j]-lateness.Milliseconds() > dl {
					label[s.ID], knownAt[s.ID] = 0, locs[idx[j]][1]
					break
				}
			}
		}
	}
	return label, knownAt
}

// An example is learnt only after the message that makes its label known
// has been processed, with the label an independent computation gives, and
// at most once.
func TestNeverTrainsBeforeMaturity(t *testing.T) {
	snaps := reesSnapshots(t)
	var trained []Trained
	cfg := Config{Arch: smallArch(inputs.HeadPurchase), BatchSize: 32, CheckpointBatches: 20,
		OnTrain: func(b []Trained) { trained = append(trained, b...) }}
	tr := newTrainer(t, cfg, newRegistry(t))
	snaps = withFlush(snaps, 3, time.Hour)
	locs := feed(t, tr, snaps, 3, nil)
	if _, err := tr.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	label, knownAt := expected(snaps, locs, 30*time.Minute, 10*time.Minute)
	if len(trained) < 5000 {
		t.Fatalf("only %d examples trained", len(trained))
	}
	seen := map[string]bool{}
	positives := 0
	for _, x := range trained {
		if seen[x.ID] {
			t.Fatalf("example %s trained twice", x.ID)
		}
		seen[x.ID] = true
		want, ok := label[x.ID]
		if !ok {
			t.Fatalf("example %s trained but its label never matures", x.ID)
		}
		if x.Label != want {
			t.Fatalf("example %s trained with label %v, want %v", x.ID, x.Label, want)
		}
		if x.MaturedAt != knownAt[x.ID] {
			t.Fatalf("example %s matured at offset %d, its label is known at %d", x.ID, x.MaturedAt, knownAt[x.ID])
		}
		if x.Position <= knownAt[x.ID] {
			t.Fatalf("example %s trained at position %d, before offset %d made its label known", x.ID, x.Position, knownAt[x.ID])
		}
		if x.Label == 1 {
			positives++
		}
	}
	if len(trained) != len(label) {
		t.Errorf("trained %d examples, %d have matured labels", len(trained), len(label))
	}
	st := tr.Stats()
	t.Logf("snapshots %d, trained %d (%d positive), pending %d, out of order %d", st.Snapshots, len(trained), positives, st.Pending, st.OutOfOrder)
	if positives < 100 {
		t.Errorf("only %d positives", positives)
	}
}

// shuffledLabels replaces the real label events by random ones: every
// purchase becomes a view, and n purchases are added for users drawn
// uniformly at random at times drawn uniformly over the stream, so labels
// are independent of the features.
func shuffledLabels(snaps []features.Snapshot, n int, seed uint64) []features.Snapshot {
	r := rand.New(rand.NewPCG(seed, 1))
	var users []string
	known := map[string]bool{}
	out := make([]features.Snapshot, 0, len(snaps)+n)
	for _, s := range snaps {
		if !known[s.User] {
			known[s.User] = true
			users = append(users, s.User)
		}
		if s.Type == string(stream.TypePurchase) {
			s.Type = string(stream.TypeView)
		}
		out = append(out, s)
	}
	first, last := snaps[0].TS, snaps[len(snaps)-1].TS
	span := last.Sub(first)
	labels := make([]features.Snapshot, n)
	for i := range labels {
		ts := first.Add(time.Duration(r.Int64N(int64(span))))
		labels[i] = features.Snapshot{Version: 1, ID: "label-" + string(rune('a'+i%26)) + time.Duration(i).String(), User: users[r.IntN(len(users))],
			TS: ts, Type: string(stream.TypePurchase), Features: map[string]float64{"last_seen": float64(ts.Unix())}}
	}
	// Merge by time; a label event goes before the snapshots at its time.
	merged := make([]features.Snapshot, 0, len(out)+n)
	sortByTS(labels)
	i, j := 0, 0
	for i < len(out) || j < len(labels) {
		if j < len(labels) && (i == len(out) || !labels[j].TS.After(out[i].TS)) {
			merged = append(merged, labels[j])
			j++
		} else {
			merged = append(merged, out[i])
			i++
		}
	}
	return merged
}

func sortByTS(s []features.Snapshot) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].TS.Before(s[j-1].TS); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// With labels independent of the features, every model's prequential AUC
// is chance: nothing learns from a label before scoring. With the real
// labels the same trainer does much better, so the test can tell.
func TestShuffledLabelsGiveChanceAUC(t *testing.T) {
	snaps := reesSnapshots(t)
	// The shuffled run is judged over every example (its positives are
	// few); the real one over the last 5000, once the network has learnt.
	for _, c := range []struct {
		name   string
		snaps  []features.Snapshot
		window int
		models []string
		lo, hi float64
	}{
		{"shuffled", shuffledLabels(snaps, 3000, 1), 50000, []string{ModelNetwork, ModelLogistic, ModelRecency}, 0.4, 0.6},
		{"real", snaps, 5000, []string{ModelNetwork}, 0.65, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := newTrainer(t, Config{Arch: smallArch(inputs.HeadPurchase), PurchaseHorizon: 5 * time.Minute, AllowedLateness: time.Minute, Window: c.window, CurveEvery: 5000,
				BatchSize: 32, CheckpointBatches: 10}, newRegistry(t))
			feed(t, tr, withFlush(c.snaps, 2, time.Hour), 2, nil)
			st := tr.Stats()
			task := st.Tasks[inputs.HeadPurchase]
			t.Logf("%s: matured %d, positives %d", c.name, task.Matured, task.Positives)
			if task.Positives < 300 || task.Matured-task.Positives < 300 {
				t.Fatalf("too few of a class: %d positives of %d", task.Positives, task.Matured)
			}
			for _, m := range c.models {
				auc := float64(task.Models[m].AUC)
				t.Logf("%s: %s AUC %.4f over %d", c.name, m, auc, task.Models[m].Examples)
				if !(auc >= c.lo && auc <= c.hi) {
					t.Errorf("%s AUC %.4f not in [%v, %v]", m, auc, c.lo, c.hi)
				}
			}
			for _, m := range []string{ModelChampion, ModelRecency, ModelLogistic} {
				t.Logf("%s: (for comparison) %s AUC %.4f over %d", c.name, m, float64(task.Models[m].AUC), task.Models[m].Examples)
			}
		})
	}
}

// Pending examples are bounded: beyond MaxPending the oldest are dropped
// and counted; re-published snapshots (same id) are learnt once.
func TestBoundedPendingAndDedupe(t *testing.T) {
	snaps := reesSnapshots(t)[:3000]
	dup := append(append([]features.Snapshot(nil), snaps[:1000]...), snaps[500:3000]...) // 500 re-published
	tr := newTrainer(t, Config{Arch: smallArch(), MaxPending: 400}, newRegistry(t))
	feed(t, tr, dup, 1, nil)
	st := tr.Stats()
	if st.Duplicates != 500 {
		t.Errorf("%d duplicates, want 500", st.Duplicates)
	}
	if st.Pending > 400 {
		t.Errorf("%d pending, bound 400", st.Pending)
	}
	if st.Dropped == 0 {
		t.Error("nothing dropped although far more than 400 examples were pending")
	}
	task := st.Tasks[inputs.HeadPurchase]
	if task.Examples != 3000-st.OutOfOrder {
		t.Errorf("%d examples from 3000 distinct snapshots (%d out of order)", task.Examples, st.OutOfOrder)
	}
	var repeat int64
	if r, ok := st.Tasks[inputs.HeadRepeat]; ok {
		repeat = r.Examples - r.Matured
	}
	if got := task.Examples - task.Matured + repeat - st.Dropped; got != int64(st.Pending) {
		t.Errorf("examples − matured − dropped = %d, pending %d", got, st.Pending)
	}
}

var _ = registry.StatusCandidate
var _ = math.NaN

func TestForgetDropsAUsersExamples(t *testing.T) {
	tr := newTrainer(t, Config{}, newRegistry(t))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	for i, u := range []string{"keep", "erase", "erase", "keep"} {
		s := features.Snapshot{Version: features.SnapshotVersion, ID: fmt.Sprint("e", i), User: u, TS: base.Add(time.Duration(i) * time.Second),
			Type: "view", Features: map[string]float64{"views_total": float64(i + 1)}}
		if err := tr.ProcessSnapshot(ctx, 0, int64(i), &s); err != nil {
			t.Fatal(err)
		}
	}
	if tr.Holds("erase") != 2 || tr.Holds("keep") != 2 {
		t.Fatalf("before: erase %d keep %d", tr.Holds("erase"), tr.Holds("keep"))
	}
	if n := tr.Forget("erase", base.Add(time.Minute)); n != 2 {
		t.Fatalf("Forget dropped %d, want 2", n)
	}
	if tr.Holds("erase") != 0 || tr.Holds("keep") != 2 {
		t.Fatalf("after: erase %d keep %d", tr.Holds("erase"), tr.Holds("keep"))
	}
	// A snapshot produced before the erasure that arrives after it is
	// dropped; one produced after it (the user came back) is kept.
	for i, made := range []time.Time{base.Add(30 * time.Second), base.Add(2 * time.Minute)} {
		s := features.Snapshot{Version: features.SnapshotVersion, ID: fmt.Sprint("late", i), User: "erase", TS: made,
			Type: "view", Features: map[string]float64{"views_total": 1}, Source: features.SnapshotSource{Appended: made}}
		if err := tr.ProcessSnapshot(ctx, 0, int64(10+i), &s); err != nil {
			t.Fatal(err)
		}
	}
	if got := tr.Holds("erase"); got != 1 {
		t.Fatalf("after late snapshots: holds %d, want 1 (only the one made after the erasure)", got)
	}
}
