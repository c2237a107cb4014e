package app_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/stream"
)

// TestReplayHeaders: tracing off adds nothing; each record otherwise starts
// its own trace, recorded as a producer span when sampled and carried,
// flagged unsampled, when not.
func TestReplayHeaders(t *testing.T) {
	for _, tp := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		if h := app.ReplayHeaders(tp, "clickstream"); h != nil {
			t.Errorf("ReplayHeaders(%T) is not nil with tracing off", tp)
		}
	}
	for _, tc := range []struct {
		name    string
		sampler sdktrace.Sampler
		sampled bool
	}{
		{"sampled", sdktrace.AlwaysSample(), true},
		{"not sampled", sdktrace.NeverSample(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(tc.sampler), sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			headers := app.ReplayHeaders(tp, "clickstream")
			r := stream.ReplayRecord{Value: []byte(`{}`), Time: time.Date(2019, 10, 1, 0, 0, 0, 0, time.UTC)}
			a := trace.SpanContextFromContext(observability.ExtractHeaders(context.Background(), headers(&r)))
			b := trace.SpanContextFromContext(observability.ExtractHeaders(context.Background(), headers(&r)))
			if !a.IsValid() || !b.IsValid() || a.TraceID() == b.TraceID() {
				t.Fatalf("records carry %v and %v, want a trace each", a, b)
			}
			if a.IsSampled() != tc.sampled {
				t.Errorf("sampled flag %v, want %v", a.IsSampled(), tc.sampled)
			}
			spans := rec.Ended()
			if !tc.sampled {
				if len(spans) != 0 {
					t.Errorf("%d spans recorded for unsampled records", len(spans))
				}
				return
			}
			if len(spans) != 2 || spans[0].Name() != "send clickstream" || spans[0].SpanKind() != trace.SpanKindProducer ||
				spans[0].SpanContext().SpanID() != a.SpanID() || spans[0].Parent().IsValid() {
				t.Fatalf("spans %v, want two root producer spans \"send clickstream\"", spans)
			}
			for _, kv := range spans[0].Attributes() {
				if kv.Key == observability.AttrEventTime && kv.Value.AsInt64() != r.Time.UnixMilli() {
					t.Errorf("event time attribute %v", kv.Value.AsInt64())
				}
			}
		})
	}
}
