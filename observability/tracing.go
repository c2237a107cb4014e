package observability

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The environment variables SetupTracing reads itself. The OTLP exporters
// read their own (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT,
// _INSECURE, _COMPRESSION, _CERTIFICATE ...), the SDK reads the sampler
// (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG), the batch span processor
// (OTEL_BSP_*) and the span limits (OTEL_SPAN_*_LIMIT), and the resource
// detector reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
const (
	EnvSDKDisabled         = "OTEL_SDK_DISABLED"
	EnvTracesExporter      = "OTEL_TRACES_EXPORTER"
	EnvOTLPProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvOTLPTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvTracesSampler       = "OTEL_TRACES_SAMPLER"
	EnvTracesSamplerArg    = "OTEL_TRACES_SAMPLER_ARG"
	EnvServiceName         = "OTEL_SERVICE_NAME"
	EnvResourceAttributes  = "OTEL_RESOURCE_ATTRIBUTES"
	defaultShutdownTimeout = 5 * time.Second
)

// Exporter names accepted in OTEL_TRACES_EXPORTER.
const (
	ExporterNone    = "none"
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
)

// OTLP protocols accepted in OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// tracingEnv is the part of the OTEL_* configuration SetupTracing acts on.
type tracingEnv struct {
	// exporters are the span exporters to run, each once, in the order
	// given; empty means tracing is off.
	exporters []string
	// protocol is the OTLP transport, when exporters include otlp.
	protocol string
}

// parseTracingEnv reads and validates the OTEL_* variables through getenv.
//
// Defaults: OTEL_TRACES_EXPORTER=none (this service's choice: tracing is
// opt-in, where the OpenTelemetry spec defaults to otlp) and
// OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (the spec's default). The sampler
// variables are only validated here, so that a typo fails at start-up instead
// of silently sampling everything (the SDK's fallback); the SDK reads them
// itself.
func parseTracingEnv(getenv func(string) string) (tracingEnv, error) {
	var env tracingEnv
	if v := strings.TrimSpace(getenv(EnvSDKDisabled)); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			return env, &EnvError{Var: EnvSDKDisabled, Value: v, Reason: "want true or false"}
		}
		if off {
			return env, nil
		}
	}
	raw := getenv(EnvTracesExporter)
	none := false
	for name := range strings.SplitSeq(raw, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		switch name {
		case "":
			continue
		case ExporterNone:
			none = true
		case ExporterOTLP, ExporterConsole:
			if !contains(env.exporters, name) {
				env.exporters = append(env.exporters, name)
			}
		default:
			return tracingEnv{}, &EnvError{Var: EnvTracesExporter, Value: raw,
				Reason: "unsupported exporter " + strconv.Quote(name) + "; want otlp, console or none (comma-separated)"}
		}
	}
	if none && len(env.exporters) > 0 {
		return tracingEnv{}, &EnvError{Var: EnvTracesExporter, Value: raw, Reason: "none cannot be combined with other exporters"}
	}
	if len(env.exporters) == 0 {
		return tracingEnv{}, nil
	}
	if contains(env.exporters, ExporterOTLP) {
		env.protocol = ProtocolHTTPProtobuf
		for _, key := range []string{EnvOTLPTracesProtocol, EnvOTLPProtocol} {
			v := strings.TrimSpace(getenv(key))
			if v == "" {
				continue
			}
			switch strings.ToLower(v) {
			case ProtocolGRPC:
				env.protocol = ProtocolGRPC
			case ProtocolHTTPProtobuf:
				env.protocol = ProtocolHTTPProtobuf
			default:
				return tracingEnv{}, &EnvError{Var: key, Value: v, Reason: "want grpc or http/protobuf"}
			}
			break
		}
	}
	if err := checkSamplerEnv(getenv); err != nil {
		return tracingEnv{}, err
	}
	return env, nil
}

// checkSamplerEnv validates OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// with the rules of the SDK's own parser.
func checkSamplerEnv(getenv func(string) string) error {
	s := strings.ToLower(strings.TrimSpace(getenv(EnvTracesSampler)))
	arg := strings.TrimSpace(getenv(EnvTracesSamplerArg))
	switch s {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		return nil
	case "traceidratio", "parentbased_traceidratio":
		if arg == "" {
			return nil // the SDK uses ratio 1.0
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return &EnvError{Var: EnvTracesSamplerArg, Value: arg, Reason: "want a sampling ratio between 0 and 1"}
		}
		return nil
	}
	return &EnvError{Var: EnvTracesSampler, Value: getenv(EnvTracesSampler),
		Reason: "want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SetupTracing returns the process's tracer provider, configured only through
// the standard OTEL_* environment variables, and its shutdown function.
//
//   - OTEL_TRACES_EXPORTER: comma-separated otlp, console, none. Default none:
//     the provider is a no-op (trace/noop), whose spans cost one interface
//     call, and shutdown does nothing. OTEL_SDK_DISABLED=true forces none.
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL:
//     grpc or http/protobuf. Default http/protobuf.
//   - Endpoint, headers, timeout, TLS and compression: the OTLP exporters read
//     OTEL_EXPORTER_OTLP_[TRACES_]* themselves.
//   - OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG: read by the SDK (no
//     sampler is set here); validated here so a bad value is an error.
//     Default parentbased_always_on. Production: parentbased_traceidratio.
//   - OTEL_SERVICE_NAME (overrides serviceName), OTEL_RESOURCE_ATTRIBUTES.
//   - OTEL_BSP_*: the batch span processor's queue, batch size and delays.
//
// console writes one JSON object per span to standard output.
//
// Spans are exported by the SDK's batch span processor, off the hot path.
// SetupTracing does not touch the otel globals; call otel.SetTracerProvider
// and otel.SetTextMapPropagator(Propagator()) if libraries should use them.
//
// shutdown flushes pending spans and stops the exporters. It returns once
// done, after 5s, or when its ctx is done, whichever comes first, so pass a
// context that is not already cancelled (e.g. context.WithoutCancel of the
// run context). It may be called more than once; later calls return the
// first call's result.
//
// Errors wrap ErrInvalidConfig (an *EnvError) for bad variables.
func SetupTracing(ctx context.Context, serviceName string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	return setupTracing(ctx, serviceName, os.Getenv, os.Stdout)
}

// setupTracing is SetupTracing with the environment and console writer
// injectable for tests. The exporters themselves still read os.Getenv.
func setupTracing(ctx context.Context, serviceName string, getenv func(string) string, console io.Writer) (trace.TracerProvider, func(context.Context) error, error) {
	env, err := parseTracingEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	if len(env.exporters) == 0 {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(serviceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, nil, &EnvError{Var: EnvResourceAttributes, Value: getenv(EnvResourceAttributes), Reason: err.Error()}
	}
	var exporters []sdktrace.SpanExporter
	closeAll := func() {
		for _, e := range exporters {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = e.Shutdown(sctx) // nothing was exported yet; the construction error is reported
			cancel()
		}
	}
	for _, name := range env.exporters {
		var exp sdktrace.SpanExporter
		switch name {
		case ExporterOTLP:
			if env.protocol == ProtocolGRPC {
				exp, err = otlptracegrpc.New(ctx)
			} else {
				exp, err = otlptracehttp.New(ctx)
			}
		case ExporterConsole:
			exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
		}
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("observability: creating the %s span exporter: %w", name, err)
		}
		exporters = append(exporters, exp)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	sdk := sdktrace.NewTracerProvider(opts...)
	return sdk, boundedOnce(sdk.Shutdown, defaultShutdownTimeout), nil
}

// boundedOnce wraps stop so that it runs once, for at most limit, and every
// call returns its result.
func boundedOnce(stop func(context.Context) error, limit time.Duration) func(context.Context) error {
	var (
		once sync.Once
		err  error
	)
	return func(ctx context.Context) error {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(ctx, limit)
			defer cancel()
			err = stop(sctx)
		})
		return err
	}
}
