package pipeline

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// memStore is an in-memory StateStore: no user is stored, writes are
// counted. It isolates the processor's own cost from Redis.
type memStore struct {
	writes  int
	flushes []features.Flush
	keep    bool // keep every flush (tests)
}

func (s *memStore) LoadCheckpoint(context.Context, string, int) (features.Checkpoint, error) {
	return features.Checkpoint{Next: -1}, nil
}

func (s *memStore) Load(_ context.Context, _ string, _ int, load, _ []string) ([]features.Loaded, map[string]features.Erasure, error) {
	out := make([]features.Loaded, len(load))
	for i := range out {
		out[i].Stamp = -1
	}
	return out, nil, nil
}

func (s *memStore) Write(_ context.Context, f features.Flush) (features.FlushStats, error) {
	s.writes++
	if s.keep {
		s.flushes = append(s.flushes, f)
	}
	return features.FlushStats{Users: len(f.Users), Commands: len(f.Users) + 1, Duration: time.Microsecond}, nil
}

// memSender records (tests) or discards (benchmarks) what is sent.
type memSender struct {
	keep bool
	sent []kafka.Message
	n    int
}

func (s *memSender) Send(_ context.Context, msgs ...kafka.Message) error {
	s.n += len(msgs)
	if s.keep {
		s.sent = append(s.sent, msgs...)
	}
	return nil
}

// sampleMessages returns the first n records of the bundled REES46 sample
// as clickstream messages of partition 0, with offsets from 0 and Kafka
// timestamps.
func sampleMessages(tb testing.TB, n int) []kafka.Message {
	tb.Helper()
	r, c, err := source.Open(source.REES46, source.EmbeddedPrefix+data.REES46Sample)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	msgs := make([]kafka.Message, 0, n)
	for len(msgs) < n {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			continue
		}
		off := int64(len(msgs))
		msgs = append(msgs, kafka.Message{Topic: "clickstream", Partition: 0, Offset: off, HighWaterMark: int64(n),
			Key: []byte(rec.Event.ProfileKey()), Value: rec.Value, Time: now})
	}
	return msgs
}

// runProcessor feeds msgs through a fresh processor of t in batches of
// MaxBatch, flushing every FlushEvents, as Run does, and flushes at the
// end.
func runProcessor(tb testing.TB, t *Topology, msgs []kafka.Message) {
	ctx := context.Background()
	p := newProcessor(t, stream.Partition{Topic: t.cfg.Topic, ID: 0})
	if _, err := p.Resume(ctx); err != nil {
		tb.Fatal(err)
	}
	feed := &stream.Feed{}
	for i := 0; i < len(msgs); i += t.cfg.MaxBatch {
		batch := msgs[i:min(i+t.cfg.MaxBatch, len(msgs))]
		if err := p.process(ctx, batch); err != nil {
			tb.Fatal(err)
		}
		if p.pending >= t.cfg.FlushEvents {
			if err := p.flush(ctx, feed); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := p.flush(ctx, feed); err != nil {
		tb.Fatal(err)
	}
}

// benchTopology is the ingest topology, with the snapshot stage when
// snapshots, over the in-memory store and a discarding sender.
func benchTopology(tb testing.TB, cfg Config, snapshots bool) *Topology {
	tb.Helper()
	var stages []Stage
	if snapshots {
		stages = append(stages, &SnapshotStage{Features: cfg.Features})
	}
	t, err := New(cfg, &memStore{}, &memSender{}, stages...)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// BenchmarkProcessor is the processor's cost per event (decode, dedupe,
// feature update, snapshot, flush bookkeeping) on the REES46 sample, with
// the store and sender faked. Variants set observability up differently.
func BenchmarkProcessor(b *testing.B) {
	const n = 8192
	msgs := sampleMessages(b, n)
	for _, stages := range []struct {
		name      string
		snapshots bool
	}{{"features", false}, {"snapshots", true}} {
		for _, v := range benchVariants(b) {
			b.Run(stages.name+"/"+v.name, func(b *testing.B) {
				t := benchTopology(b, v.cfg, stages.snapshots)
				b.ReportAllocs()
				for b.Loop() {
					runProcessor(b, t, msgs)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/event")
			})
		}
	}
}

type benchVariant struct {
	name string
	cfg  Config
}
