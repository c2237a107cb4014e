package observability

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// producedMessage returns a clickstream record whose headers carry the
// context of a fresh "produce" span of tp (nil: no headers), and that span's
// context.
func producedMessage(tp trace.TracerProvider, offset int64) (kafka.Message, trace.SpanContext) {
	m := kafka.Message{Topic: "clickstream", Partition: 3, Offset: offset, Key: []byte("user-1"),
		Value: []byte(`{"schema":1}`), Time: time.UnixMilli(1_700_000_000_000 + offset)}
	if tp == nil {
		return m, trace.SpanContext{}
	}
	ctx, span := tp.Tracer("producer").Start(context.Background(), "produce", trace.WithSpanKind(trace.SpanKindProducer))
	InjectHeaders(ctx, &m.Headers)
	span.End()
	return m, span.SpanContext()
}

// pipelineEvent simulates the processor's per-event work: the consume span
// and its step spans, Batch.Event, and (when trigger is set) a trigger
// record emitted through Batch.Emit. It returns the consume span.
func pipelineEvent(ctx context.Context, tr *Tracer, b *Batch, m *kafka.Message, trigger *kafka.Message) trace.Span {
	ectx, span := tr.StartConsume(ctx, m)
	_, s := tr.Start(ectx, SpanDecode)
	End(s, nil)
	_, s = tr.Start(ectx, SpanDedupe)
	End(s, nil)
	_, s = tr.Start(ectx, SpanFeatureUpdate)
	End(s, nil)
	evTime := m.Time.Add(-time.Second)
	b.Event(span, evTime, m.Time)
	if trigger != nil {
		sctx, s := tr.Start(ectx, SpanScore)
		b.Emit(sctx, trigger, OutputTrigger, evTime, m.Time)
		End(s, nil)
	}
	span.End()
	return span
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// TestBatchSpanTree simulates one flush of three events: two produced with
// trace context (one of them causing a trigger), one without.
func TestBatchSpanTree(t *testing.T) {
	tp, rec := newSDK(t, nil)
	tr := NewTracer(TracerConfig{Provider: tp, ConsumerGroup: "streamprofile"})
	b := NewBatch(tr, nil)
	ctx := context.Background()

	m0, prod0 := producedMessage(tp, 10)
	m1, _ := producedMessage(nil, 11)
	m2, prod2 := producedMessage(tp, 12)
	trigger := kafka.Message{Topic: "triggers", Value: []byte(`{"kind":"cart_abandon"}`)}

	ev0 := pipelineEvent(ctx, tr, b, &m0, nil)
	ev1 := pipelineEvent(ctx, tr, b, &m1, nil)
	ev2 := pipelineEvent(ctx, tr, b, &m2, &trigger)

	fctx, flush := b.StartFlush(ctx)
	if got := trace.SpanContextFromContext(fctx); got.SpanID() != flush.SpanContext().SpanID() {
		t.Error("StartFlush's context does not hold the flush span")
	}
	if n := len(rec.Ended()); countNamed(rec.Ended(), SpanEmit) != 0 {
		t.Fatalf("an emit span ended before its flush (%d spans ended)", n)
	}
	b.EndFlush(flush, 2, 7, time.Millisecond, nil)

	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	consume := []trace.Span{ev0, ev1, ev2}
	producers := []trace.SpanContext{prod0, {}, prod2}
	for i, ev := range consume {
		s := byID[ev.SpanContext().SpanID()]
		if s == nil {
			t.Fatalf("consume span %d not recorded", i)
		}
		if s.Name() != "process clickstream" || s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("consume span %d: %q kind %v, want \"process clickstream\" consumer", i, s.Name(), s.SpanKind())
		}
		if p := producers[i]; p.IsValid() {
			if s.Parent().SpanID() != p.SpanID() || s.SpanContext().TraceID() != p.TraceID() || !s.Parent().IsRemote() {
				t.Errorf("consume span %d: parent %v, want the remote producer span %v", i, s.Parent(), p)
			}
		} else if s.Parent().IsValid() {
			t.Errorf("consume span %d without headers has parent %v, want a new root", i, s.Parent())
		}
		a := attrs(s)
		want := map[attribute.Key]string{
			"messaging.system": "kafka", "messaging.operation.type": "process", "messaging.destination.name": "clickstream",
			"messaging.destination.partition.id": "3", "messaging.consumer.group.name": "streamprofile",
		}
		for k, v := range want {
			if a[k].AsString() != v {
				t.Errorf("consume span %d: %s = %q, want %q", i, k, a[k].AsString(), v)
			}
		}
		if off := a["messaging.kafka.offset"].AsInt64(); off != int64(10+i) {
			t.Errorf("consume span %d: offset %d, want %d", i, off, 10+i)
		}
		if got := a[AttrIngestTime].AsInt64(); got != 1_700_000_000_000+int64(10+i) {
			t.Errorf("consume span %d: %s = %d", i, AttrIngestTime, got)
		}
		if got := a[AttrEventTime].AsInt64(); got != 1_700_000_000_000+int64(10+i)-1000 {
			t.Errorf("consume span %d: %s = %d", i, AttrEventTime, got)
		}
		if _, ok := a["messaging.kafka.message.key"]; ok {
			t.Errorf("consume span %d records the message key (a user id)", i)
		}
	}
	// Step spans are children of their event's consume span.
	steps := map[string]int{}
	for _, s := range spans {
		switch s.Name() {
		case SpanDecode, SpanDedupe, SpanFeatureUpdate, SpanScore:
			steps[s.Name()]++
			parent := byID[s.Parent().SpanID()]
			if parent == nil || !strings.HasPrefix(parent.Name(), "process ") {
				t.Errorf("%s span's parent is %v, want a consume span", s.Name(), s.Parent())
			}
		}
	}
	if steps[SpanDecode] != 3 || steps[SpanDedupe] != 3 || steps[SpanFeatureUpdate] != 3 || steps[SpanScore] != 1 {
		t.Errorf("step spans %v, want 3 decode, dedupe, feature_update and 1 score", steps)
	}

	// The emit span: producer kind, child of score, its context in the
	// trigger's headers, ended by the flush.
	emit := named(spans, SpanEmit)
	if len(emit) != 1 {
		t.Fatalf("%d emit spans, want 1", len(emit))
	}
	e := emit[0]
	if e.SpanKind() != trace.SpanKindProducer || byID[e.Parent().SpanID()].Name() != SpanScore {
		t.Errorf("emit span kind %v parent %q, want producer child of score", e.SpanKind(), byID[e.Parent().SpanID()].Name())
	}
	if e.SpanContext().TraceID() != prod2.TraceID() {
		t.Error("emit span is not in the trace of the event that caused it")
	}
	if sc := trace.SpanContextFromContext(ExtractHeaders(ctx, trigger.Headers)); sc.SpanID() != e.SpanContext().SpanID() {
		t.Errorf("trigger headers carry span %v, want the emit span %v", sc.SpanID(), e.SpanContext().SpanID())
	}
	if a := attrs(e); a["messaging.destination.name"].AsString() != "triggers" || a[AttrOutput].AsString() != OutputTrigger {
		t.Errorf("emit span attributes %v", a)
	}

	// The flush: child of the first event, linked to all three.
	fl := named(spans, SpanRedisFlush)
	if len(fl) != 1 {
		t.Fatalf("%d redis_flush spans, want 1", len(fl))
	}
	f := fl[0]
	if f.Parent().SpanID() != ev0.SpanContext().SpanID() {
		t.Errorf("flush parent %v, want the first event's span %v", f.Parent().SpanID(), ev0.SpanContext().SpanID())
	}
	if len(f.Links()) != 3 {
		t.Fatalf("flush has %d links, want 3", len(f.Links()))
	}
	for i, l := range f.Links() {
		if l.SpanContext.SpanID() != consume[i].SpanContext().SpanID() {
			t.Errorf("link %d → %v, want event span %v", i, l.SpanContext.SpanID(), consume[i].SpanContext().SpanID())
		}
	}
	a := attrs(f)
	if a[AttrFlushUsers].AsInt64() != 2 || a[AttrFlushCommands].AsInt64() != 7 || a["messaging.batch.message_count"].AsInt64() != 3 {
		t.Errorf("flush attributes %v", a)
	}
	if e.EndTime().Before(f.StartTime()) {
		t.Error("emit span ended before the flush that sends its record started")
	}

	// The batch is reset: the next flush links to nothing and is a root.
	_, flush2 := b.StartFlush(ctx)
	b.EndFlush(flush2, 0, 1, 0, nil)
	f2 := named(rec.Ended(), SpanRedisFlush)[1]
	if len(f2.Links()) != 0 || f2.Parent().IsValid() {
		t.Errorf("second flush: %d links, parent %v; want a root without links", len(f2.Links()), f2.Parent())
	}
}

// TestBatchDiscard: abandoned work ends its emit spans with the error and
// leaves nothing for the next flush.
func TestBatchDiscard(t *testing.T) {
	tp, rec := newSDK(t, nil)
	tr := NewTracer(TracerConfig{Provider: tp})
	b := NewBatch(tr, nil)
	ctx := context.Background()
	m, _ := producedMessage(tp, 1)
	trigger := kafka.Message{Topic: "triggers"}
	pipelineEvent(ctx, tr, b, &m, &trigger)
	b.Discard(errors.New("redis load failed"))
	emit := named(rec.Ended(), SpanEmit)
	if len(emit) != 1 || emit[0].Status().Code != codes.Error {
		t.Fatalf("want one emit span ended with an error, got %d", len(emit))
	}
	_, f := b.StartFlush(ctx)
	b.EndFlush(f, 0, 0, 0, nil)
	if fl := named(rec.Ended(), SpanRedisFlush); len(fl) != 1 || len(fl[0].Links()) != 0 {
		t.Error("the flush after Discard links to discarded events")
	}
	if n := len(named(rec.Ended(), SpanEmit)); n != 1 {
		t.Errorf("%d emit spans after the next flush, want the discarded one only", n)
	}
}

func named(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func countNamed(spans []sdktrace.ReadOnlySpan, name string) int { return len(named(spans, name)) }

// TestUnsampledEventsAreNotLinked: with a ratio-0 root sampler, events
// without trace context are not recorded and the flush links nothing,
// while an event produced in a sampled trace is still followed.
func TestUnsampledEventsAreNotLinked(t *testing.T) {
	tp, rec := newSDK(t, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))
	upstream, _ := newSDK(t, nil)
	tr := NewTracer(TracerConfig{Provider: tp})
	b := NewBatch(tr, nil)
	ctx := context.Background()
	m0, _ := producedMessage(nil, 1)
	m1, prod := producedMessage(upstream, 2)
	trigger := kafka.Message{Topic: "triggers"}
	unsampled := pipelineEvent(ctx, tr, b, &m0, &trigger)
	ev := pipelineEvent(ctx, tr, b, &m1, nil)
	_, flush := b.StartFlush(ctx)
	b.EndFlush(flush, 1, 1, 0, nil)

	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() != prod.TraceID() {
			t.Errorf("span %q recorded in trace %v, outside the sampled upstream trace", s.Name(), s.SpanContext().TraceID())
		}
	}
	// The trigger of the unsampled event still carries its trace id,
	// flagged not sampled, so downstream consumers honour the decision.
	sc := trace.SpanContextFromContext(ExtractHeaders(ctx, trigger.Headers))
	if !sc.IsValid() || sc.IsSampled() || sc.TraceID() != unsampled.SpanContext().TraceID() {
		t.Errorf("trigger of an unsampled event carries %v, want its trace id, not sampled", sc)
	}
	fl := named(rec.Ended(), SpanRedisFlush)
	if len(fl) != 1 || len(fl[0].Links()) != 1 || fl[0].Links()[0].SpanContext.SpanID() != ev.SpanContext().SpanID() {
		t.Fatalf("want one flush span linked to the sampled event only, got %d flush spans", len(fl))
	}
}

func TestEndRecordsRedactedError(t *testing.T) {
	tp, rec := newSDK(t, nil)
	tr := NewTracer(TracerConfig{Provider: tp})
	_, s := tr.Start(context.Background(), SpanDecode)
	End(s, errors.New(`malformed: invalid JSON near "jane@example.com" from 10.1.2.3`))
	got := rec.Ended()[0]
	if got.Status().Code != codes.Error {
		t.Errorf("status %v, want Error", got.Status())
	}
	text := got.Status().Description
	for _, ev := range got.Events() {
		for _, kv := range ev.Attributes {
			text += " " + kv.Value.Emit()
		}
	}
	if strings.Contains(text, "jane@example.com") || strings.Contains(text, "10.1.2.3") {
		t.Errorf("span carries PII: %s", text)
	}
	if !strings.Contains(text, "malformed: invalid JSON near") {
		t.Errorf("span lost the error text: %s", text)
	}
}

// TestTracerOffCostsNothing: with no provider, or a no-op one, the whole
// per-event and per-flush sequence touches no header and allocates nothing.
func TestTracerOffCostsNothing(t *testing.T) {
	for name, tr := range map[string]*Tracer{
		"nil tracer":    nil,
		"no provider":   NewTracer(TracerConfig{}),
		"noop provider": NewTracer(TracerConfig{Provider: noop.NewTracerProvider()}),
	} {
		t.Run(name, func(t *testing.T) {
			if tr.Enabled() {
				t.Fatal("Enabled() = true")
			}
			up, _ := newSDK(t, nil)
			m, _ := producedMessage(up, 1)
			before := len(m.Headers)
			trigger := kafka.Message{Topic: "triggers"}
			b := NewBatch(tr, nil)
			ctx := context.Background()
			allocs := testing.AllocsPerRun(200, func() {
				pipelineEvent(ctx, tr, b, &m, &trigger)
				fctx, f := b.StartFlush(ctx)
				if fctx != ctx {
					t.Fatal("StartFlush changed the context")
				}
				b.EndFlush(f, 1, 1, time.Millisecond, nil)
			})
			if allocs != 0 {
				t.Errorf("%v allocations per event with tracing off, want 0", allocs)
			}
			if len(m.Headers) != before || len(trigger.Headers) != 0 {
				t.Error("headers were touched with tracing off")
			}
			if cctx, span := tr.StartConsume(ctx, &m); cctx != ctx || span.IsRecording() {
				t.Error("StartConsume with tracing off changed the context or recorded")
			}
		})
	}
}

// benchEvent is the per-event instrumentation of the hot path, with a
// flush every 1000 events.
func benchEvent(b *testing.B, tr *Tracer, m *Metrics, msg kafka.Message) {
	batch := NewBatch(tr, m)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		pipelineEvent(ctx, tr, batch, &msg, nil)
		if i%1000 == 999 {
			_, f := batch.StartFlush(ctx)
			batch.EndFlush(f, 100, 300, time.Millisecond, nil)
		}
	}
}

// BenchmarkEventTracingOff is the cost the instrumentation adds per event
// when tracing is off and metrics are not wired: target ~0, no allocations.
func BenchmarkEventTracingOff(b *testing.B) {
	msg, _ := producedMessage(nil, 1)
	benchEvent(b, NewTracer(TracerConfig{Provider: noop.NewTracerProvider()}), nil, msg)
}

// BenchmarkEventTracingOffMetricsOn adds the latency bookkeeping (observed
// at flush).
func BenchmarkEventTracingOffMetricsOn(b *testing.B) {
	msg, _ := producedMessage(nil, 1)
	m, err := NewMetrics(NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	benchEvent(b, nil, m, msg)
}

// BenchmarkEventUnsampled: tracing on, parentbased_traceidratio=0, records
// without trace context (the common case in production at a low ratio).
func BenchmarkEventUnsampled(b *testing.B) {
	tp, _ := newSDK(b, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))
	msg, _ := producedMessage(nil, 1)
	benchEvent(b, NewTracer(TracerConfig{Provider: tp}), nil, msg)
}

// BenchmarkEventSampled: every event traced (5 spans) into an in-memory
// recorder; the cost of a sampled event.
func BenchmarkEventSampled(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	up, _ := newSDK(b, nil)
	msg, _ := producedMessage(up, 1)
	benchEvent(b, NewTracer(TracerConfig{Provider: tp}), nil, msg)
}
