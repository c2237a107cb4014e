package pipeline

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/stream"
)

// obsFixture is a topology with the snapshot stage over fakes that keep
// what they are given.
type obsFixture struct {
	topo   *Topology
	store  *memStore
	sender *memSender
	rec    *tracetest.SpanRecorder
	reg    *prometheus.Registry
}

func newObsFixture(t *testing.T, sampler sdktrace.Sampler, metrics bool) *obsFixture {
	t.Helper()
	f := &obsFixture{store: &memStore{keep: true}, sender: &memSender{keep: true}, rec: tracetest.NewSpanRecorder()}
	var cfg Config
	if sampler != nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(f.rec))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		cfg.Tracer = observability.NewTracer(observability.TracerConfig{Provider: tp, ConsumerGroup: "g"})
	}
	if metrics {
		f.reg = prometheus.NewRegistry()
		m, err := observability.NewMetrics(f.reg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Metrics = m
	}
	topo, err := New(cfg, f.store, f.sender, &SnapshotStage{Features: cfg.Features})
	if err != nil {
		t.Fatal(err)
	}
	f.topo = topo
	return f
}

// run processes msgs as one batch and flushes.
func (f *obsFixture) run(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	ctx := context.Background()
	p := newProcessor(f.topo, stream.Partition{Topic: f.topo.cfg.Topic})
	if _, err := p.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.process(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := p.flush(ctx, &stream.Feed{}); err != nil {
		t.Fatal(err)
	}
}

// record returns a clickstream record at offset of the event JSON.
func record(offset int64, key, value string, headers ...kafka.Header) kafka.Message {
	return kafka.Message{Topic: "clickstream", Offset: offset, HighWaterMark: offset + 1, Key: []byte(key), Value: []byte(value),
		Time: time.Now().Add(-time.Millisecond), Headers: headers}
}

func viewJSON(id, user string) string {
	return fmt.Sprintf(`{"schema":1,"event_id":%q,"type":"view","user_id":%q,"ts":"2019-10-01T00:00:00Z","item_id":"i1","price":3.5}`, id, user)
}

// parentHeader is a traceparent of a sampled remote span (the replay
// tool's).
var remoteParent = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled, Remote: true,
})

func traceparent(sc trace.SpanContext) kafka.Header {
	return kafka.Header{Key: "traceparent", Value: []byte(fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags()))}
}

// headerContext extracts the span context a produced record carries.
func headerContext(m kafka.Message) trace.SpanContext {
	return trace.SpanContextFromContext(observability.ExtractHeaders(context.Background(), m.Headers))
}

func spansByName(spans []sdktrace.ReadOnlySpan) map[string][]sdktrace.ReadOnlySpan {
	out := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		out[s.Name()] = append(out[s.Name()], s)
	}
	return out
}

// TestTraceThroughProcessor: a record carrying a trace continues it through
// the pipeline's steps into every record it causes (snapshot, dead letter,
// forwarded identify, merge record), and the flush links to its events.
func TestTraceThroughProcessor(t *testing.T) {
	f := newObsFixture(t, sdktrace.ParentBased(sdktrace.AlwaysSample()), false)
	identify := `{"schema":1,"event_id":"id1","type":"identify","user_id":"u2","anonymous_id":"a1","ts":"2019-10-01T00:00:01Z"}`
	f.run(t,
		record(0, "u1", viewJSON("e1", "u1"), traceparent(remoteParent), kafka.Header{Key: "source", Value: []byte("replay")}),
		record(1, "u1", `{"schema":1,`, traceparent(remoteParent)), // malformed: dead-lettered
		record(2, "u2", identify, traceparent(remoteParent)),       // user side: forwarded to a1's partition
		record(3, "a1", identify, traceparent(remoteParent)),       // anonymous side: a merge record for u2
	)
	byName := spansByName(f.rec.Ended())
	consume := byName["process clickstream"]
	if len(consume) != 4 {
		t.Fatalf("%d consume spans, want 4 (one per record)", len(consume))
	}
	for _, c := range consume {
		if c.Parent().SpanID() != remoteParent.SpanID() || c.SpanContext().TraceID() != remoteParent.TraceID() {
			t.Errorf("consume span parent %v, want the record's remote span", c.Parent())
		}
		if c.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("consume span kind %v", c.SpanKind())
		}
	}
	isChild := func(s sdktrace.ReadOnlySpan) bool {
		return slices.ContainsFunc(consume, func(c sdktrace.ReadOnlySpan) bool { return c.SpanContext().SpanID() == s.Parent().SpanID() })
	}
	for name, want := range map[string]int{
		observability.SpanDecode: 4, observability.SpanDedupe: 3, observability.SpanFeatureUpdate: 1,
		observability.SpanScore: 1, observability.SpanEmit: 4,
	} {
		if got := len(byName[name]); got != want {
			t.Errorf("%d %s spans, want %d", got, name, want)
		}
		for _, s := range byName[name] {
			if !isChild(s) {
				t.Errorf("%s span's parent %v is not a consume span", name, s.Parent())
			}
		}
	}
	var badDecode int
	for _, s := range byName[observability.SpanDecode] {
		if s.Status().Code != 0 {
			badDecode++
		}
	}
	if badDecode != 1 {
		t.Errorf("%d decode spans with an error status, want 1 (the malformed record)", badDecode)
	}
	flushes := byName[observability.SpanRedisFlush]
	if len(flushes) != 1 {
		t.Fatalf("%d redis_flush spans, want 1", len(flushes))
	}
	// The flush carries the view, the identify of u2 and the merge hand-over
	// (three events made durable); the dead letter is not an event.
	if links := flushes[0].Links(); len(links) != 3 {
		t.Errorf("redis_flush has %d links, want 3", len(links))
	}

	emits := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, e := range byName[observability.SpanEmit] {
		emits[e.SpanContext().SpanID()] = e
	}
	outputs := map[string]int{}
	for _, m := range f.sender.sent {
		sc := headerContext(m)
		e, ok := emits[sc.SpanID()]
		if !ok || sc.TraceID() != remoteParent.TraceID() {
			t.Errorf("record to %s carries %v, want an emit span of the replayed trace", m.Topic, sc)
			continue
		}
		for _, a := range e.Attributes() {
			if a.Key == observability.AttrOutput {
				outputs[a.Value.AsString()]++
			}
		}
		if n := countHeader(m.Headers, "traceparent"); n != 1 {
			t.Errorf("record to %s has %d traceparent headers, want 1", m.Topic, n)
		}
	}
	want := map[string]int{OutputSnapshot: 1, observability.OutputDeadLetter: 1, OutputInternal: 2}
	if fmt.Sprint(outputs) != fmt.Sprint(want) {
		t.Errorf("emitted outputs %v, want %v", outputs, want)
	}
}

func countHeader(h []kafka.Header, key string) int {
	n := 0
	for _, x := range h {
		if x.Key == key {
			n++
		}
	}
	return n
}

// TestTraceRoots: a record without trace context starts a new trace,
// sampled by the configured sampler; an unsampled trace still travels to
// the records it causes, flagged unsampled, and records no span.
func TestTraceRoots(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sampler sdktrace.Sampler
		sampled bool
	}{
		{"always", sdktrace.ParentBased(sdktrace.AlwaysSample()), true},
		{"ratio 0", sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newObsFixture(t, tc.sampler, false)
			f.run(t, record(0, "u1", viewJSON("e1", "u1")), record(1, "u1", viewJSON("e2", "u1")))
			if len(f.sender.sent) != 2 {
				t.Fatalf("%d records sent, want 2 snapshots", len(f.sender.sent))
			}
			a, b := headerContext(f.sender.sent[0]), headerContext(f.sender.sent[1])
			if !a.IsValid() || !b.IsValid() || a.TraceID() == b.TraceID() {
				t.Errorf("snapshots carry %v and %v, want two new traces", a, b)
			}
			if a.IsSampled() != tc.sampled {
				t.Errorf("sampled flag %v, want %v", a.IsSampled(), tc.sampled)
			}
			if got := len(f.rec.Ended()); tc.sampled != (got > 0) {
				t.Errorf("%d spans recorded; sampled %v", got, tc.sampled)
			}
		})
	}
}

// TestTracingOff: without a tracer no trace header is added, and one the
// input carried is passed on unchanged where the record is copied.
func TestTracingOff(t *testing.T) {
	f := newObsFixture(t, nil, false)
	f.run(t, record(0, "u1", viewJSON("e1", "u1")), record(1, "u1", `nope`, traceparent(remoteParent)))
	if len(f.sender.sent) != 2 {
		t.Fatalf("%d records sent, want a snapshot and a dead letter", len(f.sender.sent))
	}
	for _, m := range f.sender.sent {
		sc := headerContext(m)
		switch m.Topic {
		case DefaultSnapshotTopic:
			if sc.IsValid() {
				t.Errorf("snapshot carries %v with tracing off", sc)
			}
		case "clickstream.dlq":
			if sc.SpanID() != remoteParent.SpanID() {
				t.Errorf("dead letter carries %v, want the original record's header", sc)
			}
		}
	}
}

// TestProcessorMetrics: a flush observes the end-to-end latency of every
// event made durable (output profile) and of every record sent, by output,
// and the flush's size.
func TestProcessorMetrics(t *testing.T) {
	f := newObsFixture(t, nil, true)
	f.run(t, record(0, "u1", viewJSON("e1", "u1")), record(1, "u2", viewJSON("e2", "u2")),
		record(2, "u2", viewJSON("e2", "u2")), // duplicate: no output
		record(3, "u3", `{}`))
	count := func(name string, labels map[string]string) uint64 {
		mfs, err := f.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if matches(m, labels) {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   uint64
	}{
		{"streamprofile_e2e_latency_seconds", map[string]string{"stage": "ingest", "output": "profile"}, 2},
		{"streamprofile_e2e_latency_seconds", map[string]string{"stage": "event", "output": "profile"}, 2},
		{"streamprofile_e2e_latency_seconds", map[string]string{"stage": "ingest", "output": OutputSnapshot}, 2},
		{"streamprofile_e2e_latency_seconds", map[string]string{"stage": "ingest", "output": "dlq"}, 1},
		{"streamprofile_e2e_latency_seconds", map[string]string{"stage": "event", "output": "dlq"}, 0},
		{"streamprofile_redis_flush_users", nil, 1},
		{"streamprofile_redis_flush_seconds", nil, 1},
	} {
		if got := count(c.name, c.labels); got != c.want {
			t.Errorf("%s%v: %d observations, want %d", c.name, c.labels, got, c.want)
		}
	}
}

func matches(m *dto.Metric, labels map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range labels {
		if have[k] != v {
			return false
		}
	}
	return true
}

// TestProcessedLag: the feed's lag is the high watermark fetched with the
// newest processed record minus the offset after it.
func TestProcessedLag(t *testing.T) {
	var f stream.Feed
	for _, tc := range []struct{ hwm, offset, want int64 }{{10, 3, 6}, {10, 9, 0}, {5, 9, 0}} {
		f.Processed(&kafka.Message{HighWaterMark: tc.hwm, Offset: tc.offset})
		if got := f.Lag(); got != tc.want {
			t.Errorf("hwm %d offset %d: lag %d, want %d", tc.hwm, tc.offset, got, tc.want)
		}
	}
}
