package trainer

import (
	"context"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/stream"
)

type message struct {
	part   int
	offset int64
	value  []byte
}

func encodeAll(t *testing.T, snaps []features.Snapshot, parts int) []message {
	t.Helper()
	next := map[int]int64{}
	out := make([]message, len(snaps))
	for i := range snaps {
		b, err := snaps[i].Encode()
		if err != nil {
			t.Fatal(err)
		}
		p := partitionOf(snaps[i].User, parts)
		out[i] = message{p, next[p], b}
		next[p]++
	}
	return out
}

// auditedIDs counts, over every version's stored state, the example ids
// each version learnt.
func auditedIDs(t *testing.T, reg *registry.Registry) map[string]int {
	t.Helper()
	ctx := context.Background()
	vs, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, v := range vs {
		raw, err := reg.State(ctx, v.Number)
		if err != nil {
			t.Fatal(err)
		}
		st, err := decodeState(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range st.Trained {
			out[id]++
		}
	}
	return out
}

// A trainer that crashes (loses everything since its last checkpoint) and
// restarts from the latest version learns every example exactly once: the
// union of what the versions learnt equals what one uninterrupted trainer
// learns, without repetition.
func TestRestartNeitherLosesNorRepeats(t *testing.T) {
	const parts = 2
	// The flush passes the repeat horizon too, so inline-stored pending
	// repeat examples mature within the test.
	snaps := withFlush(reesSnapshots(t), parts, 49*time.Hour)
	// Re-published snapshots (an ingester crash) around the crash points.
	snaps = append(append(append([]features.Snapshot(nil), snaps[:9000]...), snaps[8800:9000]...), snaps[9000:]...)
	msgs := encodeAll(t, snaps, parts)
	cfg := Config{Arch: smallArch(), PurchaseHorizon: 5 * time.Minute, RepeatHorizon: 24 * time.Hour, AllowedLateness: time.Minute, BatchSize: 32,
		CheckpointBatches: 7, AuditTrained: true, Gate: GateConfig{Disabled: true}}
	ctx := context.Background()

	ref := map[string]int{}
	refCfg := cfg
	refCfg.OnTrain = func(b []Trained) {
		for _, x := range b {
			ref[x.ID+"/"+x.Task]++
		}
	}
	rt := newTrainer(t, refCfg, newRegistry(t))
	for _, m := range msgs {
		if err := rt.Process(ctx, m.part, m.offset, m.value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rt.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	reg := newRegistry(t)
	crashes := []int{len(msgs) * 3 / 10, len(msgs) * 6 / 10, len(msgs) * 8 / 10, len(msgs)}
	for inc, stop := range crashes {
		tr := newTrainer(t, cfg, reg)
		resume := map[int]int64{}
		for p := 0; p < parts; p++ {
			proc, _ := tr.Factory()(stream.Partition{Topic: "profile-examples", ID: p})
			off, err := proc.Resume(ctx)
			if err != nil {
				t.Fatal(err)
			}
			resume[p] = off
		}
		n := 0
		for _, m := range msgs[:stop] {
			if off := resume[m.part]; off >= 0 && m.offset < off {
				continue
			}
			if err := tr.Process(ctx, m.part, m.offset, m.value); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if inc == len(crashes)-1 {
			if _, err := tr.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
		st := tr.Stats()
		t.Logf("incarnation %d: resumed at %v, processed %d messages, %d versions so far, pending %d", inc, resume, n, st.Versions, st.Pending)
		tr.Close() // a crash: nothing after the last checkpoint is kept
	}
	got := auditedIDs(t, reg)
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s learnt %d times", id, n)
		}
		if ref[id] != 1 {
			t.Errorf("%s learnt after restarts but not by the uninterrupted trainer", id)
		}
	}
	for id := range ref {
		if got[id] == 0 {
			t.Errorf("%s learnt by the uninterrupted trainer but lost across restarts", id)
		}
	}
	if len(ref) < 10000 || countSuffix(ref, inputs.HeadRepeat) < 100 {
		t.Fatalf("only %d examples learnt", len(ref))
	}
	t.Logf("%d examples learnt exactly once across %d incarnations (%d repeat examples)", len(got), len(crashes), countSuffix(got, inputs.HeadRepeat))
}

func countSuffix(m map[string]int, suffix string) int {
	n := 0
	for id := range m {
		if len(id) > len(suffix) && id[len(id)-len(suffix):] == suffix {
			n++
		}
	}
	return n
}
