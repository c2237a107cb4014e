package bench

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/stream"
)

// trainerSpec configures the trainer measurements.
type trainerSpec struct {
	// BatchSizes are the micro-batch sizes TrainBatch is measured at.
	BatchSizes []int `json:"batch_sizes"`
	// Duration of each measurement.
	Duration time.Duration `json:"duration"`
}

// TrainerResult reports the model side.
type TrainerResult struct {
	// Arch describes the configured network (trainer.Config defaults).
	Hidden          []int `json:"hidden"`
	NumericFeatures int   `json:"numeric_features"`
	TokenFields     int   `json:"token_fields"`
	HashBuckets     int   `json:"hash_buckets"`
	EmbedDim        int   `json:"embed_dim"`
	Heads           int   `json:"heads"`
	// ConfiguredBatch is the trainer's default micro-batch.
	ConfiguredBatch int `json:"configured_batch"`
	// Batches: nn.Network.TrainBatch examples/s per batch size.
	Batches []BatchRate `json:"batches"`
	// SnapshotsPerSec and LearntPerSec: trainer.Trainer.ProcessSnapshot end
	// to end (labels, scoring by network, challenger and baselines,
	// micro-batches, checkpoints into a directory registry).
	SnapshotsPerSec float64 `json:"snapshots_per_sec"`
	LearntPerSec    float64 `json:"learnt_per_sec"`
	// ScoreMicros is inputs.Encoder.EncodeInto + nn.Model.PredictInto per
	// profile.
	ScoreMicros float64   `json:"score_micros"`
	Proc        ProcStats `json:"proc"`
}

// BatchRate is TrainBatch's rate at one batch size.
type BatchRate struct {
	Batch          int     `json:"batch"`
	ExamplesPerSec float64 `json:"examples_per_sec"`
}

// sampleSnapshots applies the sample to fresh states and returns the
// snapshot of every behavioural event, as the ingester would publish them.
func sampleSnapshots(s *Sample) []features.Snapshot {
	cfg := features.Config{}.WithDefaults()
	states := map[string]*features.State{}
	out := make([]features.Snapshot, 0, len(s.events))
	var newest int64
	for i := range s.events {
		ev := &s.events[i]
		if ev.Type == stream.TypeConsent || ev.Type == stream.TypeIdentify {
			continue
		}
		newest = max(newest, ev.TS.UnixMilli())
		st := states[ev.ProfileKey()]
		if st == nil {
			st = &features.State{}
			states[ev.ProfileKey()] = st
		}
		env := features.Env{Cfg: &cfg, Watermark: newest - cfg.AllowedLateness.Milliseconds()}
		if st.Apply(ev, env) != features.Applied {
			continue
		}
		out = append(out, features.NewSnapshot(ev, ev.ProfileKey(), st, &cfg, features.SnapshotSource{Offset: int64(i)}))
	}
	return out
}

// labelledExamples encodes snaps as examples for arch: head h of example
// i is labelled label(i, h), every head unmasked.
func labelledExamples(enc *inputs.Encoder, arch nn.Arch, snaps []features.Snapshot, label func(i, h int) float64) []nn.Example {
	exs := make([]nn.Example, len(snaps))
	for i := range snaps {
		exs[i] = enc.Encode(&snaps[i])
		exs[i].Labels = make([]float64, len(arch.Heads))
		exs[i].Mask = make([]bool, len(arch.Heads))
		for h := range arch.Heads {
			exs[i].Labels[h], exs[i].Mask[h] = label(i, h), true
		}
	}
	return exs
}

func runTrainer(ctx context.Context, spec *trainerSpec, ready func() error) (*TrainerResult, error) {
	sample, err := LoadSample()
	if err != nil {
		return nil, err
	}
	snaps := sampleSnapshots(sample)
	cfg := trainer.Config{}.WithDefaults()
	arch := cfg.Arch
	enc, err := inputs.New(arch)
	if err != nil {
		return nil, err
	}
	res := &TrainerResult{
		Hidden: arch.Hidden, NumericFeatures: len(arch.NumericFeatures), TokenFields: len(arch.TokenFields),
		HashBuckets: arch.HashBuckets, EmbedDim: arch.EmbedDim, Heads: len(arch.Heads), ConfiguredBatch: cfg.BatchSize,
	}
	exs := labelledExamples(enc, arch, snaps, func(i, h int) float64 { return float64((i + h) % 2) })
	if err := ready(); err != nil {
		return nil, err
	}
	cpu0 := cpuTime()

	for _, b := range spec.BatchSizes {
		a := arch
		a.BatchSize = b
		net, err := nn.NewNetwork(a)
		if err != nil {
			return nil, err
		}
		n, start := 0, time.Now()
		for i := 0; time.Since(start) < spec.Duration && ctx.Err() == nil; i += b {
			lo := i % (len(exs) - b)
			if _, err := net.TrainBatch(exs[lo : lo+b]); err != nil {
				net.Close()
				return nil, err
			}
			n += b
		}
		res.Batches = append(res.Batches, BatchRate{Batch: b, ExamplesPerSec: float64(n) / time.Since(start).Seconds()})
		if b == cfg.BatchSize || len(spec.BatchSizes) == 1 {
			if res.ScoreMicros, err = scoreMicros(net, enc, snaps, spec.Duration); err != nil {
				net.Close()
				return nil, err
			}
		}
		net.Close()
	}
	if res.SnapshotsPerSec, res.LearntPerSec, err = trainerRate(ctx, snaps, spec.Duration); err != nil {
		return nil, err
	}
	res.Proc = procStats(cpuTime() - cpu0)
	return res, nil
}

// scoreMicros measures encode + predict per profile.
func scoreMicros(net *nn.Network, enc *inputs.Encoder, snaps []features.Snapshot, d time.Duration) (float64, error) {
	m, err := net.Snapshot()
	if err != nil {
		return 0, err
	}
	out := make([]float64, len(m.Arch().Heads))
	var ex nn.Example
	n, start := 0, time.Now()
	for time.Since(start) < d {
		for range 256 {
			ex = enc.EncodeInto(ex, &snaps[n%len(snaps)])
			if _, err := m.PredictInto(out, ex); err != nil {
				return 0, err
			}
			n++
		}
	}
	return time.Since(start).Seconds() * 1e6 / float64(n), nil
}

// trainerRate feeds snapshots through a trainer with the default
// configuration for d; each pass over the sample is later in event time
// with fresh ids.
func trainerRate(ctx context.Context, snaps []features.Snapshot, d time.Duration) (float64, float64, error) {
	dir, err := os.MkdirTemp("", "streamprofile-bench-registry-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	backend, err := registry.NewDirBackend(dir)
	if err != nil {
		return 0, 0, err
	}
	reg, err := registry.New(registry.Config{Backend: backend})
	if err != nil {
		return 0, 0, err
	}
	tr, err := trainer.New(trainer.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, reg)
	if err != nil {
		return 0, 0, err
	}
	defer tr.Close()
	if err := tr.Restore(ctx); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	var off int64
	for i := 0; time.Since(start) < d; i++ {
		s := snaps[i%len(snaps)]
		if pass := i / len(snaps); pass > 0 {
			shift := time.Duration(pass) * CopyShift
			s.TS = s.TS.Add(shift)
			s.ID += "/" + strconv.Itoa(pass)
			f := make(map[string]float64, len(s.Features))
			for k, v := range s.Features {
				f[k] = v
			}
			for _, k := range []string{"first_seen", "last_seen"} {
				if v, ok := f[k]; ok {
					f[k] = v + shift.Seconds()
				}
			}
			s.Features = f
		}
		if err := tr.ProcessSnapshot(ctx, 0, off, &s); err != nil {
			return 0, 0, err
		}
		off++
	}
	el := time.Since(start).Seconds()
	var learnt int64
	for _, t := range tr.Stats().Tasks {
		learnt += t.Trained
	}
	return float64(off) / el, float64(learnt) / el, nil
}
