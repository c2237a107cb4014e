package pipeline

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/streamprofile/streamprofile/observability"
)

// benchVariants are the observability set-ups BenchmarkProcessor compares:
// off (the default), metrics only, tracing with every trace dropped by the
// sampler (ratio 0), and tracing with every trace sampled (spans recorded,
// not exported).
func benchVariants(tb testing.TB) []benchVariant {
	metrics := func() *observability.Metrics {
		m, err := observability.NewMetrics(prometheus.NewRegistry())
		if err != nil {
			tb.Fatal(err)
		}
		return m
	}
	tracer := func(s sdktrace.Sampler) *observability.Tracer {
		return observability.NewTracer(observability.TracerConfig{Provider: sdktrace.NewTracerProvider(sdktrace.WithSampler(s))})
	}
	return []benchVariant{
		{name: "off", cfg: Config{}},
		{name: "metrics", cfg: Config{Metrics: metrics()}},
		{name: "traced-ratio0", cfg: Config{Tracer: tracer(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))}},
		{name: "traced-all", cfg: Config{Tracer: tracer(sdktrace.AlwaysSample()), Metrics: metrics()}},
	}
}
