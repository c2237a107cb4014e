package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReplayRecord is one record to replay: the message value and key, and the
// event time used for pacing (zero: publish without pacing).
type ReplayRecord struct {
	Key   []byte
	Value []byte
	Time  time.Time
}

// ReplaySource yields records in order; io.EOF ends it. A *SkipError
// (returned with no record) is counted and skipped.
type ReplaySource interface {
	Next() (ReplayRecord, error)
}

// SkipError marks a source item that cannot be published at all.
type SkipError struct{ Err error }

func (e *SkipError) Error() string { return "skipped: " + e.Err.Error() }
func (e *SkipError) Unwrap() error { return e.Err }

// ReplayConfig configures a replay. Every field states its default.
type ReplayConfig struct {
	// Topic to publish to. Default "clickstream".
	Topic string
	// Speed is a multiple of real time (2 = twice as fast as the events
	// happened); 0 publishes as fast as the broker accepts. Default 0.
	Speed float64
	// Batch is the most records per produce call. Default 2000.
	Batch int
	// Limit stops after this many records (0: all). Default 0.
	Limit int64
	// Until stops before the first record with event time at or after it
	// (zero: no limit).
	Until time.Time
	// Headers are added to every message (for example trace context).
	Headers func(rec *ReplayRecord) []kafka.Header
	// Progress is called after each batch with the records published so
	// far. Optional.
	Progress func(published int64)
}

// ReplayStats summarises a replay.
type ReplayStats struct {
	Published int64
	Skipped   int64
	First     time.Time // first event time published
	Last      time.Time // largest event time published
	Wall      time.Duration
}

// Replay publishes src to Kafka through p, paced by event time when Speed >
// 0. Each batch is acknowledged before the next is built.
func Replay(ctx context.Context, p interface {
	Send(context.Context, ...kafka.Message) error
}, src ReplaySource, cfg ReplayConfig) (ReplayStats, error) {
	if cfg.Topic == "" {
		cfg.Topic = "clickstream"
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 2000
	}
	if cfg.Speed < 0 {
		return ReplayStats{}, fmt.Errorf("stream: replay speed %g is negative", cfg.Speed)
	}
	var st ReplayStats
	start := time.Now()
	var t0 time.Time
	batch := make([]kafka.Message, 0, cfg.Batch)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := p.Send(ctx, batch...); err != nil {
			return err
		}
		st.Published += int64(len(batch))
		clear(batch)
		batch = batch[:0]
		if cfg.Progress != nil {
			cfg.Progress(st.Published)
		}
		return nil
	}
	for {
		if cfg.Limit > 0 && st.Published+int64(len(batch)) >= cfg.Limit {
			break
		}
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var skip *SkipError
		if errors.As(err, &skip) {
			st.Skipped++
			continue
		}
		if err != nil {
			return st, err
		}
		if !cfg.Until.IsZero() && !rec.Time.IsZero() && !rec.Time.Before(cfg.Until) {
			break
		}
		if !rec.Time.IsZero() {
			if st.First.IsZero() {
				st.First = rec.Time
			}
			if rec.Time.After(st.Last) {
				st.Last = rec.Time
			}
		}
		if cfg.Speed > 0 && !rec.Time.IsZero() {
			if t0.IsZero() {
				t0 = rec.Time
			}
			due := start.Add(time.Duration(float64(rec.Time.Sub(t0)) / cfg.Speed))
			if wait := time.Until(due); wait > 0 {
				// Ship what is ready before sleeping, so latency is not
				// added by batching.
				if err := send(); err != nil {
					return st, err
				}
				if wait = time.Until(due); wait > 0 {
					select {
					case <-ctx.Done():
						return st, ctx.Err()
					case <-time.After(wait):
					}
				}
			}
		}
		m := kafka.Message{Topic: cfg.Topic, Key: rec.Key, Value: rec.Value}
		if cfg.Headers != nil {
			m.Headers = cfg.Headers(&rec)
		}
		batch = append(batch, m)
		if len(batch) >= cfg.Batch {
			if err := send(); err != nil {
				return st, err
			}
		}
	}
	if err := send(); err != nil {
		return st, err
	}
	st.Wall = time.Since(start)
	return st, nil
}
