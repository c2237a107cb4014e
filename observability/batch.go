package observability

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
)

// Batch is the observability bookkeeping of one partition's pending flush,
// kept by the partition's processor next to its outbox:
//
//   - the sampled consume spans of the events the flush makes durable, which
//     the flush's redis_flush span links to;
//   - the emit spans of the records the flush sends, ended when the send is
//     acknowledged;
//   - the event and Kafka times of those events and records, whose
//     end-to-end latency (Metrics.Output) is observed once they are done.
//
// It is used by one goroutine. With tracing off and no metrics every method
// returns at once; with metrics on, Event appends two integers to a reused
// slice. A Batch may be reused for the next flush after EndFlush.
type Batch struct {
	tracer  *Tracer
	metrics *Metrics
	now     func() time.Time

	outputs map[string]*OutputLatency
	profile *OutputLatency

	events int          // events carried, sampled or not
	links  []trace.Link // sampled consume spans
	times  []eventTimes // applied events, for OutputProfile
	emits  []emitted
}

type eventTimes struct {
	event, ingest int64 // Unix nanoseconds; 0 unknown
	link          int32 // index into links, -1 when not sampled
}

type emitted struct {
	span          trace.Span
	out           *OutputLatency
	event, ingest int64
}

// NewBatch returns the bookkeeping of one partition. Either argument may be
// nil (tracing, or metrics, off).
func NewBatch(t *Tracer, m *Metrics) *Batch {
	b := &Batch{metrics: m, now: time.Now, outputs: map[string]*OutputLatency{}}
	if t.Enabled() {
		b.tracer = t
	}
	if m != nil {
		b.profile = m.Output(OutputProfile)
	}
	return b
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Event records an event applied to its user's state, whose consume span is
// span: the flush links to the span (when sampled) and observes the event's
// OutputProfile latency once durable. eventTime is the event's ts,
// ingestTime its record's Kafka timestamp (kafka.Message.Time); a zero time
// is unknown. It also sets AttrEventTime on a recording span.
func (b *Batch) Event(span trace.Span, eventTime, ingestTime time.Time) {
	if b.tracer == nil && b.metrics == nil {
		return
	}
	b.events++
	link := int32(-1)
	if b.tracer != nil {
		if sc := span.SpanContext(); sc.IsSampled() {
			link = int32(len(b.links))
			b.links = append(b.links, trace.Link{SpanContext: sc})
			AnnotateEvent(span, eventTime)
		}
	}
	if b.metrics != nil {
		b.times = append(b.times, eventTimes{event: unixNano(eventTime), ingest: unixNano(ingestTime), link: link})
	}
}

// Emit records msg, produced because of the event whose context is ctx, as
// sent by the next flush: it starts msg's emit span (injecting its context
// into msg.Headers) and, when the flush succeeds, ends it and observes the
// latency of output (OutputTrigger, OutputScore, OutputDeadLetter ...) from
// eventTime and ingestTime. msg must not be sent before it is recorded.
func (b *Batch) Emit(ctx context.Context, msg *kafka.Message, output string, eventTime, ingestTime time.Time) {
	if b.tracer == nil && b.metrics == nil {
		return
	}
	e := emitted{event: unixNano(eventTime), ingest: unixNano(ingestTime)}
	if b.tracer != nil {
		_, e.span = b.tracer.StartEmit(ctx, msg, output)
	}
	if b.metrics != nil {
		e.out = b.outputs[output]
		if e.out == nil {
			e.out = b.metrics.Output(output)
			b.outputs[output] = e.out
		}
	}
	b.emits = append(b.emits, e)
}

// StartFlush starts the redis_flush span of the pending flush. It links to
// every sampled event span recorded by Event and is a child of the first
// one, so it is exported whenever one of its events is (a separate root
// would be sampled on its own, losing the links); without sampled events it
// is a new root. Pass the returned context to the sends and the Redis
// write. Span limits bound the links (OTEL_SPAN_LINK_COUNT_LIMIT, default
// 128); the span's streamprofile.flush.sampled_events tells how many there
// were.
func (b *Batch) StartFlush(ctx context.Context) (context.Context, trace.Span) {
	if b.tracer == nil {
		return ctx, noopSpan
	}
	return b.tracer.startFlush(ctx, b.links, b.events)
}

// EndFlush closes the flush begun by StartFlush: on success (err nil) it
// ends the emit spans, observes every recorded latency, the users written
// and the Redis write duration d (pass the features.FlushStats of the
// write; commands only sizes the span); on failure it ends the emit spans
// with err and observes nothing (the records are processed again after the
// restart, and observed then). Either way span ends and the Batch is reset.
func (b *Batch) EndFlush(span trace.Span, users, commands int, d time.Duration, err error) {
	if span.IsRecording() {
		span.SetAttributes(AttrFlushUsers.Int(users), AttrFlushCommands.Int(commands))
	}
	End(span, err)
	if b.tracer == nil && b.metrics == nil {
		return
	}
	now := b.now().UnixNano()
	for i := range b.emits {
		e := &b.emits[i]
		if e.span != nil {
			End(e.span, err)
		}
		if err == nil {
			var sc trace.SpanContext
			if e.span != nil {
				sc = e.span.SpanContext()
			}
			e.out.observe(now, e.event, e.ingest, sc)
		}
	}
	if b.metrics != nil {
		if err == nil {
			b.metrics.ObserveFlush(users, d)
			for _, t := range b.times {
				var sc trace.SpanContext
				if t.link >= 0 {
					sc = b.links[t.link].SpanContext
				}
				b.profile.observe(now, t.event, t.ingest, sc)
			}
		}
	}
	b.reset()
}

func (b *Batch) reset() {
	b.events = 0
	clear(b.links)
	b.links = b.links[:0]
	b.times = b.times[:0]
	clear(b.emits)
	b.emits = b.emits[:0]
}

// Discard ends the held emit spans with err and forgets everything recorded
// since the last flush, without counting a flush. Call it when the processor
// gives up its pending work without flushing (it failed, and its partition
// restarts from the checkpoint, where the events are processed again).
func (b *Batch) Discard(err error) {
	for i := range b.emits {
		if s := b.emits[i].span; s != nil {
			End(s, err)
		}
	}
	b.reset()
}
