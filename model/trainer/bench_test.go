package trainer

import (
	"context"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
)

// BenchmarkProcess measures one snapshot through the trainer: decode-free
// processing (dedupe, labels, scoring by the network, challenger and
// baselines, pending bookkeeping) plus its share of micro-batch training
// and checkpoints. Reported: snapshots/s and examples learnt/s.
func BenchmarkProcess(b *testing.B) {
	snaps := reesSnapshots(b)
	tr := newTrainer(b, Config{Arch: smallArch(), PurchaseHorizon: 5 * time.Minute, AllowedLateness: time.Minute,
		CheckpointBatches: 1000, CheckpointInterval: time.Hour}, newRegistry(b))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var off int64
	for i := 0; b.Loop(); i++ {
		s := snaps[i%len(snaps)]
		// Each pass over the sample is later in time, with fresh ids.
		shift := time.Duration(i/len(snaps)) * 4 * time.Hour
		s.TS = s.TS.Add(shift)
		s.ID = s.ID + "#" + itoa(int64(i/len(snaps)))
		s.Features = shifted(s.Features, shift)
		if err := tr.ProcessSnapshot(ctx, 0, off, &s); err != nil {
			b.Fatal(err)
		}
		off++
	}
	el := time.Since(start).Seconds()
	st := tr.Stats()
	var trained int64
	for _, t := range st.Tasks {
		trained += t.Trained
	}
	b.ReportMetric(float64(off)/el, "snapshots/s")
	b.ReportMetric(float64(trained)/el, "learnt/s")
}

func shifted(f map[string]float64, d time.Duration) map[string]float64 {
	out := make(map[string]float64, len(f))
	for k, v := range f {
		out[k] = v
	}
	for _, k := range []string{"first_seen", "last_seen"} {
		if v, ok := out[k]; ok {
			out[k] = v + d.Seconds()
		}
	}
	return out
}

// BenchmarkTrainBatch measures one micro-batch of 128 matured examples
// through the trainer's training step.
func BenchmarkTrainBatch(b *testing.B) {
	snaps := reesSnapshots(b)
	tr := newTrainer(b, Config{Arch: smallArch()}, newRegistry(b))
	c := tr.c
	batch := make([]ready, 128)
	for i := range batch {
		p := &pending{id: snaps[i].ID, ex: c.enc.Encode(&snaps[i]), part: 0}
		batch[i] = ready{p: p, task: taskPurchase, label: float64(i % 2)}
	}
	c.part(0)
	b.ReportAllocs()
	for b.Loop() {
		c.ready = append(c.ready[:0], batch...)
		c.train(true)
	}
	b.ReportMetric(128*float64(b.N)/b.Elapsed().Seconds(), "examples/s")
}

var _ = features.SnapshotVersion
