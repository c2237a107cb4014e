package observability

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of the spans this package creates.
const ScopeName = "github.com/streamprofile/streamprofile/observability"

// Span names of the pipeline's steps. The consume span of an event is named
// "process <topic>" after the OTel messaging conventions ({operation}
// {destination}); its children carry these names.
const (
	// SpanDecode covers decoding and validating one record.
	SpanDecode = "decode"
	// SpanDedupe covers the duplicate-event-id check of one event.
	SpanDedupe = "dedupe"
	// SpanFeatureUpdate covers applying one event to its user's features.
	SpanFeatureUpdate = "feature_update"
	// SpanRedisLoad covers one batched load of user states (optional).
	SpanRedisLoad = "redis_load"
	// SpanRedisFlush covers one flush: the emitted records' send and the
	// Redis write of states and checkpoint. It links to every sampled event
	// span the flush makes durable.
	SpanRedisFlush = "redis_flush"
	// SpanScore covers scoring one event's user (the stages).
	SpanScore = "score"
	// SpanEmit is the producer span of one emitted record (trigger, score,
	// dead letter): it starts when the record is built, its context travels
	// in the record's headers, and it ends when Kafka acknowledged the
	// record, so its duration includes the wait for the flush.
	SpanEmit = "emit"
)

// Attributes this package sets beyond the OTel semantic conventions.
const (
	// AttrIngestTime is the record's Kafka timestamp (append or create
	// time, per topic config), Unix milliseconds, on consume spans.
	AttrIngestTime = attribute.Key("streamprofile.ingest_time_ms")
	// AttrEventTime is the event's own time (its ts field), Unix
	// milliseconds, on consume spans of applied events.
	AttrEventTime = attribute.Key("streamprofile.event_time_ms")
	// AttrOutput names the kind of record an emit span produced.
	AttrOutput = attribute.Key("streamprofile.output")
	// AttrFlushUsers and AttrFlushCommands size a redis_flush span.
	AttrFlushUsers    = attribute.Key("streamprofile.flush.users")
	AttrFlushCommands = attribute.Key("streamprofile.flush.commands")
	// AttrFlushSampled is how many sampled event spans a flush links to.
	AttrFlushSampled = attribute.Key("streamprofile.flush.sampled_events")
)

// noopSpan is returned by a disabled Tracer: boxed once, so returning it
// allocates nothing.
var noopSpan trace.Span = noop.Span{}

// TracerConfig configures a Tracer. Every field states its default.
type TracerConfig struct {
	// Provider creates the spans, typically SetupTracing's. Default nil:
	// tracing off. A trace/noop provider also turns tracing off.
	Provider trace.TracerProvider
	// ConsumerGroup is recorded as messaging.consumer.group.name on consume
	// spans. Default "": not recorded.
	ConsumerGroup string
}

// Tracer creates the pipeline's spans. When tracing is off (no provider, or
// a no-op one) every method returns at once: no header is parsed or
// written, no span or context is allocated, and the returned span is a
// shared no-op span. A nil *Tracer is valid and off.
//
// Hot-path callers should not build attributes for a span themselves unless
// span.IsRecording() is true: variadic attribute arguments are allocated
// even when the span ignores them.
//
// A Tracer is safe for concurrent use.
type Tracer struct {
	tracer   trace.Tracer
	group    string
	lastName atomic.Pointer[spanName]
}

// NewTracer returns a Tracer for cfg.
func NewTracer(cfg TracerConfig) *Tracer {
	if isNoop(cfg.Provider) {
		return &Tracer{}
	}
	return &Tracer{tracer: cfg.Provider.Tracer(ScopeName), group: cfg.ConsumerGroup}
}

func isNoop(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return true
	}
	return false
}

// Enabled reports whether spans are recorded (subject to sampling).
func (t *Tracer) Enabled() bool { return t != nil && t.tracer != nil }

// StartConsume starts the consumer span of one record, named "process
// <topic>" (kind consumer). Its parent is the span context found in the
// record's headers, so the producer's trace continues; without one the span
// is a new root, sampled by the configured sampler (the ratio of
// parentbased_traceidratio). Baggage in the headers is in the returned
// context. The span carries messaging.system=kafka,
// messaging.operation.{type,name}=process, messaging.destination.name,
// messaging.destination.partition.id, messaging.kafka.offset,
// messaging.message.body.size, messaging.consumer.group.name (when
// configured) and the record's Kafka timestamp (AttrIngestTime). The
// message key (a user id) is not recorded.
//
// The caller ends the span once the record is processed (not flushed).
func (t *Tracer) StartConsume(ctx context.Context, msg *kafka.Message) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noopSpan
	}
	ctx = propagator.Extract(ctx, KafkaCarrier{Headers: &msg.Headers})
	ctx, span := t.tracer.Start(ctx, t.consumeName(msg.Topic), trace.WithSpanKind(trace.SpanKindConsumer))
	if !span.IsRecording() {
		return ctx, span // unsampled: skip building the attributes
	}
	attrs := make([]attribute.KeyValue, 0, 9)
	attrs = append(attrs,
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(msg.Topic),
		semconv.MessagingDestinationPartitionID(strconv.Itoa(msg.Partition)),
		semconv.MessagingKafkaOffset(int(msg.Offset)),
		semconv.MessagingMessageBodySize(len(msg.Value)),
	)
	if t.group != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(t.group))
	}
	if !msg.Time.IsZero() {
		attrs = append(attrs, AttrIngestTime.Int64(msg.Time.UnixMilli()))
	}
	span.SetAttributes(attrs...)
	return ctx, span
}

// unsampledLocal reports whether ctx's span is a local span that was not
// sampled. Its children would not be sampled either (parent-based samplers
// follow the parent; ratio samplers decide on the same trace id), so the
// step helpers skip creating them.
func unsampledLocal(ctx context.Context) bool {
	sc := trace.SpanContextFromContext(ctx)
	return sc.IsValid() && !sc.IsSampled() && !sc.IsRemote()
}

// consumeName returns "process <topic>", cached for the last topic seen
// (a processor reads one topic), so naming a span allocates nothing.
func (t *Tracer) consumeName(topic string) string {
	if n := t.lastName.Load(); n != nil && n.topic == topic {
		return n.name
	}
	n := &spanName{topic: topic, name: "process " + topic}
	t.lastName.Store(n)
	return n.name
}

type spanName struct{ topic, name string }

// Start starts an internal child span of ctx's span named name (one of the
// Span* constants).
//
// Under an unsampled span it returns ctx and a no-op span without asking
// the SDK: the child would not be sampled either.
func (t *Tracer) Start(ctx context.Context, name string) (context.Context, trace.Span) {
	if !t.Enabled() || unsampledLocal(ctx) {
		return ctx, noopSpan
	}
	return t.tracer.Start(ctx, name)
}

// StartEmit starts the producer span (SpanEmit) of msg as a child of ctx's
// span and injects its context into msg.Headers, replacing trace headers
// copied from elsewhere. output names the record's kind (AttrOutput). The
// caller ends the span when the record is acknowledged (Batch does that).
//
// Under an unsampled span no emit span is created, but that span's context
// (flagged not sampled) is still injected, so the record's consumers continue
// the trace id and honour the sampling decision.
func (t *Tracer) StartEmit(ctx context.Context, msg *kafka.Message, output string) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noopSpan
	}
	if unsampledLocal(ctx) {
		InjectHeaders(ctx, &msg.Headers)
		return ctx, noopSpan
	}
	ctx, span := t.tracer.Start(ctx, SpanEmit, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(msg.Topic),
			semconv.MessagingMessageBodySize(len(msg.Value)),
			AttrOutput.String(output),
		))
	if span.SpanContext().IsValid() {
		InjectHeaders(ctx, &msg.Headers)
	}
	return ctx, span
}

// startFlush starts a redis_flush span linked to links. Its parent is the
// first sampled link, so the flush is recorded whenever one of the events it
// carries is (a new root would be sampled independently, by ratio, and the
// links lost); without sampled links it is a new root.
func (t *Tracer) startFlush(ctx context.Context, links []trace.Link, events int) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noopSpan
	}
	opts := []trace.SpanStartOption{
		trace.WithLinks(links...),
		trace.WithAttributes(
			semconv.MessagingBatchMessageCount(events),
			AttrFlushSampled.Int(len(links)),
		),
	}
	if len(links) > 0 {
		ctx = trace.ContextWithSpanContext(ctx, links[0].SpanContext)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	return t.tracer.Start(ctx, SpanRedisFlush, opts...)
}

// End ends span, first recording err (as an exception event and an error
// status) when it is not nil. The error text is passed through RedactString
// first: record errors may quote input, and traces leave the process.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		msg := RedactString(err.Error())
		span.AddEvent(semconv.ExceptionEventName, trace.WithAttributes(
			semconv.ExceptionType(fmt.Sprintf("%T", err)),
			semconv.ExceptionMessage(msg),
		))
		span.SetStatus(codes.Error, msg)
	}
	span.End()
}

// AnnotateEvent records the decoded event's time on its consume span
// (AttrEventTime). It does nothing when the span is not recording.
func AnnotateEvent(span trace.Span, eventTime time.Time) {
	if span.IsRecording() {
		span.SetAttributes(AttrEventTime.Int64(eventTime.UnixMilli()))
	}
}
