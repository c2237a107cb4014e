package bench

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/stream"
)

// produceSpec configures the load generator.
type produceSpec struct {
	Brokers []string `json:"brokers"`
	Topic   string   `json:"topic"`
	Users   int      `json:"users"`
	Round   int      `json:"round"`
	// Rate in events/s; 0 publishes as fast as Kafka accepts.
	Rate float64 `json:"rate"`
	// Count stops after this many events (0: no limit).
	Count int64 `json:"count"`
	// Duration stops after this long (0: no limit).
	Duration time.Duration `json:"duration"`
	// SnapshotTopic, when set, is read once the window is closed by
	// "stop" (not while it is measured, so that it loads neither the
	// broker nor this CPU then): the latency from each clickstream
	// record's append time (Snapshot.Source.Appended) to the snapshot
	// record's timestamp (its emit) is measured for records appended
	// inside the window opened by "start".
	SnapshotTopic string `json:"snapshot_topic"`
	// ChangesTopic and RetargetTopic, when set (with SnapshotTopic), are
	// the score role's outputs, read after the snapshots: every change and
	// trigger is matched to its source event (header
	// scorer.HeaderSourceEvent) and measured from that event's append.
	ChangesTopic  string `json:"changes_topic"`
	RetargetTopic string `json:"retarget_topic"`
	Partitions    int    `json:"partitions"`
}

// produceResult is the load generator's report.
type produceResult struct {
	Published int64   `json:"published"`
	Seconds   float64 `json:"seconds"`
	Rate      float64 `json:"rate"`
	// NextRound is the first round of the re-keyed stream not published
	// (partly published rounds count as published).
	NextRound int `json:"next_round"`
	// Emit: clickstream append → snapshot record timestamp.
	Emit Histogram `json:"emit"`
	// Outputs: clickstream append → the changes and triggers it caused.
	Outputs *outputLatencies `json:"outputs,omitempty"`
	Proc    ProcStats        `json:"proc"`
}

// producer writes events with the pipeline's partitioner, synchronously in
// chunks, leaving the record timestamps to the client (set when the batch is
// encoded, just before it is sent).
func newWriter(brokers []string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     stream.RouteBalancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    1000,
		BatchBytes:   1 << 20,
		WriteTimeout: 30 * time.Second,
		MaxAttempts:  10,
	}
}

func runProduce(ctx context.Context, spec *produceSpec, ctl *control, ready, done func() error) (*produceResult, error) {
	sample, err := LoadSample()
	if err != nil {
		return nil, err
	}
	src, err := sample.Rekey(spec.Users, spec.Round)
	if err != nil {
		return nil, err
	}
	w := newWriter(spec.Brokers)
	defer w.Close()

	res := &produceResult{}
	var from atomic.Int64 // unix ms; records appended before are not measured
	from.Store(1<<63 - 1)
	if err := ready(); err != nil {
		return nil, err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		select {
		case <-ctl.start:
			from.Store(time.Now().UnixMilli())
		case <-wctx.Done():
		}
	}()

	chunk := 6000
	tick := pacingTick
	if spec.Rate > 0 {
		// On schedule a write carries one tick's events; behind schedule
		// (a slow acknowledgement) it carries what is due, up to 100 ms
		// worth, so the offered rate holds on average.
		chunk = max(1, min(chunk, int(spec.Rate/10)+1))
	}
	msgs := make([]kafka.Message, 0, chunk)
	start := time.Now()
	var published int64
	finished := func() bool {
		select {
		case <-ctl.stop:
			return true
		default:
		}
		return (spec.Count > 0 && published >= spec.Count) ||
			(spec.Duration > 0 && time.Since(start) >= spec.Duration)
	}
	for !finished() {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		n := chunk
		if spec.Rate > 0 {
			due := int64(spec.Rate*time.Since(start).Seconds()) - published
			if due <= 0 {
				time.Sleep(tick)
				continue
			}
			n = int(min(due, int64(chunk)))
		}
		if spec.Count > 0 {
			n = int(min(int64(n), spec.Count-published))
		}
		msgs = msgs[:0]
		for range n {
			ev := src.Next()
			v, err := stream.Encode(&ev)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, kafka.Message{Topic: spec.Topic, Key: []byte(ev.ProfileKey()), Value: v})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return nil, fmt.Errorf("bench: produce: %w", err)
		}
		published += int64(n)
	}
	res.Published = published
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.Rate = float64(published) / res.Seconds
	}
	res.NextRound = src.Round() + 1
	if err := done(); err != nil {
		return nil, err
	}
	res.Proc = procStats(cpuTime())
	if spec.SnapshotTopic != "" {
		// Wait for the window to be closed: the coordinator stops the
		// generator once the ingester has drained.
		select {
		case <-ctl.stop:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		appended, err := emitLatencies(ctx, spec, from.Load(), &res.Emit)
		if err != nil {
			return nil, err
		}
		if spec.ChangesTopic != "" && spec.RetargetTopic != "" {
			out, err := measureOutputs(ctx, spec, appended, from.Load()*int64(time.Millisecond))
			if err != nil {
				return nil, err
			}
			res.Outputs = &out
		}
	}
	return res, nil
}

// pacingTick is how often a paced generator publishes what is due, like a
// producer's linger: finer ticks multiply the broker's produce and fetch
// requests (one per partition and tick) without changing the offered rate.
const pacingTick = 10 * time.Millisecond

// appendedField precedes the clickstream append time in a snapshot.
var appendedField = []byte(`"appended":"`)

// snapshotAppended extracts Snapshot.Source.Appended from an encoded
// snapshot without decoding the rest.
func snapshotAppended(v []byte) (time.Time, bool) {
	i := bytes.LastIndex(v, appendedField)
	if i < 0 {
		return time.Time{}, false
	}
	rest := v[i+len(appendedField):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}

// emitLatencies reads the snapshot topic to its end and observes in emit,
// for the snapshots of records appended at or after from (unix ms), the
// time from that append to the snapshot's own record timestamp. It returns
// every snapshot's id with its append time (unix ns), for matching the
// score role's outputs.
func emitLatencies(ctx context.Context, spec *produceSpec, from int64, emit *Histogram) (map[string]int64, error) {
	appended := map[string]int64{}
	err := readTopic(ctx, spec.Brokers, spec.SnapshotTopic, spec.Partitions, func(m *kafka.Message) {
		app, ok := snapshotAppended(m.Value)
		if !ok {
			return
		}
		if app.UnixMilli() >= from {
			emit.Observe(m.Time.Sub(app))
		}
		if id, ok := snapshotID(m.Value); ok {
			appended[id] = app.UnixNano()
		}
	})
	return appended, err
}
