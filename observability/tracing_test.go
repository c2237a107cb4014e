package observability

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseTracingEnv(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		exporters []string
		protocol  string
		badVar    string // the EnvError's Var, when an error is expected
	}{
		{name: "nothing set: off", env: nil},
		{name: "none", env: map[string]string{EnvTracesExporter: "none"}},
		{name: "otlp defaults to http/protobuf", env: map[string]string{EnvTracesExporter: "otlp"},
			exporters: []string{"otlp"}, protocol: ProtocolHTTPProtobuf},
		{name: "general protocol grpc", env: map[string]string{EnvTracesExporter: "otlp", EnvOTLPProtocol: "grpc"},
			exporters: []string{"otlp"}, protocol: ProtocolGRPC},
		{name: "traces protocol overrides general", env: map[string]string{EnvTracesExporter: "otlp", EnvOTLPProtocol: "grpc", EnvOTLPTracesProtocol: "http/protobuf"},
			exporters: []string{"otlp"}, protocol: ProtocolHTTPProtobuf},
		{name: "case and spaces", env: map[string]string{EnvTracesExporter: " OTLP , Console ", EnvOTLPTracesProtocol: " GRPC "},
			exporters: []string{"otlp", "console"}, protocol: ProtocolGRPC},
		{name: "duplicates collapse", env: map[string]string{EnvTracesExporter: "console,console"}, exporters: []string{"console"}},
		{name: "console needs no protocol", env: map[string]string{EnvTracesExporter: "console", EnvOTLPProtocol: "http/json"},
			exporters: []string{"console"}},
		{name: "sdk disabled wins", env: map[string]string{EnvSDKDisabled: "true", EnvTracesExporter: "otlp"}},
		{name: "sdk disabled false", env: map[string]string{EnvSDKDisabled: "false", EnvTracesExporter: "otlp"},
			exporters: []string{"otlp"}, protocol: ProtocolHTTPProtobuf},
		{name: "valid ratio sampler", env: map[string]string{EnvTracesExporter: "otlp", EnvTracesSampler: "parentbased_traceidratio", EnvTracesSamplerArg: "0.01"},
			exporters: []string{"otlp"}, protocol: ProtocolHTTPProtobuf},
		{name: "ratio sampler without arg", env: map[string]string{EnvTracesExporter: "console", EnvTracesSampler: "traceidratio"},
			exporters: []string{"console"}},
		{name: "sampler ignored when off", env: map[string]string{EnvTracesSampler: "bogus"}},

		{name: "unknown exporter", env: map[string]string{EnvTracesExporter: "zipkin"}, badVar: EnvTracesExporter},
		{name: "none mixed", env: map[string]string{EnvTracesExporter: "none,otlp"}, badVar: EnvTracesExporter},
		{name: "http/json unsupported", env: map[string]string{EnvTracesExporter: "otlp", EnvOTLPProtocol: "http/json"}, badVar: EnvOTLPProtocol},
		{name: "bad traces protocol", env: map[string]string{EnvTracesExporter: "otlp", EnvOTLPTracesProtocol: "udp"}, badVar: EnvOTLPTracesProtocol},
		{name: "bad sdk disabled", env: map[string]string{EnvSDKDisabled: "maybe"}, badVar: EnvSDKDisabled},
		{name: "unknown sampler", env: map[string]string{EnvTracesExporter: "otlp", EnvTracesSampler: "ratio"}, badVar: EnvTracesSampler},
		{name: "ratio above 1", env: map[string]string{EnvTracesExporter: "otlp", EnvTracesSampler: "traceidratio", EnvTracesSamplerArg: "1.5"}, badVar: EnvTracesSamplerArg},
		{name: "ratio not a number", env: map[string]string{EnvTracesExporter: "otlp", EnvTracesSampler: "parentbased_traceidratio", EnvTracesSamplerArg: "1%"}, badVar: EnvTracesSamplerArg},
		{name: "negative ratio", env: map[string]string{EnvTracesExporter: "otlp", EnvTracesSampler: "traceidratio", EnvTracesSamplerArg: "-0.1"}, badVar: EnvTracesSamplerArg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTracingEnv(envMap(tt.env))
			if tt.badVar != "" {
				var ee *EnvError
				if !errors.As(err, &ee) || ee.Var != tt.badVar || !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want an *EnvError for %s wrapping ErrInvalidConfig", err, tt.badVar)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !slices.Equal(got.exporters, tt.exporters) || got.protocol != tt.protocol {
				t.Errorf("got exporters %q protocol %q, want %q %q", got.exporters, got.protocol, tt.exporters, tt.protocol)
			}
		})
	}
}

// FuzzParseTracingEnv: any environment parses to a known configuration or
// an *EnvError, never a panic.
func FuzzParseTracingEnv(f *testing.F) {
	f.Add("otlp", "grpc", "", "parentbased_traceidratio", "0.5", "")
	f.Add("console,none", "http/protobuf", "grpc", "always_on", "", "false")
	f.Add("", "", "", "", "", "1")
	f.Fuzz(func(t *testing.T, exp, proto, tproto, sampler, arg, disabled string) {
		env := map[string]string{EnvTracesExporter: exp, EnvOTLPProtocol: proto, EnvOTLPTracesProtocol: tproto,
			EnvTracesSampler: sampler, EnvTracesSamplerArg: arg, EnvSDKDisabled: disabled}
		got, err := parseTracingEnv(envMap(env))
		if err != nil {
			var ee *EnvError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v is not an *EnvError", err)
			}
			return
		}
		for _, e := range got.exporters {
			if e != ExporterOTLP && e != ExporterConsole {
				t.Fatalf("unknown exporter %q accepted", e)
			}
		}
		if slices.Contains(got.exporters, ExporterOTLP) != (got.protocol != "") {
			t.Fatalf("protocol %q with exporters %q", got.protocol, got.exporters)
		}
	})
}

// clearOTELEnv unsets the variables the SDK and exporters read, for the
// rest of the test.
func clearOTELEnv(t *testing.T) {
	for _, k := range []string{EnvSDKDisabled, EnvTracesExporter, EnvOTLPProtocol, EnvOTLPTracesProtocol, EnvTracesSampler,
		EnvTracesSamplerArg, EnvServiceName, EnvResourceAttributes, "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT"} {
		t.Setenv(k, "")
	}
}

func TestSetupTracingOffIsNoop(t *testing.T) {
	clearOTELEnv(t)
	tp, shutdown, err := SetupTracing(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(noop.TracerProvider); !ok {
		t.Errorf("provider is %T, want noop.TracerProvider", tp)
	}
	if NewTracer(TracerConfig{Provider: tp}).Enabled() {
		t.Error("Tracer over the default provider is enabled")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestSetupTracingRejectsBadEnv(t *testing.T) {
	clearOTELEnv(t)
	t.Setenv(EnvTracesExporter, "jaeger")
	if _, _, err := SetupTracing(context.Background(), "svc"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	t.Setenv(EnvTracesExporter, "console")
	t.Setenv(EnvResourceAttributes, "novalue")
	if _, _, err := SetupTracing(context.Background(), "svc"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("malformed %s: err = %v, want ErrInvalidConfig", EnvResourceAttributes, err)
	}
}

// TestSetupTracingConsole: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// reach the resource, and spans reach the console exporter by shutdown.
func TestSetupTracingConsole(t *testing.T) {
	clearOTELEnv(t)
	t.Setenv(EnvTracesExporter, "console")
	t.Setenv(EnvServiceName, "from-env")
	t.Setenv(EnvResourceAttributes, "deployment.environment.name=test,service.name=ignored")
	var out syncBuffer
	tp, shutdown, err := setupTracing(context.Background(), "from-code", envMap(map[string]string{EnvTracesExporter: "console"}), &out)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "console-span")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{`"console-span"`, `"from-env"`, `"deployment.environment.name"`, `"test"`} {
		if !strings.Contains(got, want) {
			t.Errorf("console output lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"from-code"`) {
		t.Error("OTEL_SERVICE_NAME did not override the service name given in code")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSetupTracingSamplerFromEnv verifies that the SDK reads the sampler
// variables when SetupTracing sets no sampler.
func TestSetupTracingSamplerFromEnv(t *testing.T) {
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	tests := []struct {
		sampler, arg              string
		rootSampled, childSampled bool
	}{
		{"", "", true, true}, // SDK default parentbased_always_on
		{"always_off", "", false, false},
		{"traceidratio", "0", false, false},
		{"parentbased_traceidratio", "0", false, true},
		{"parentbased_traceidratio", "1", true, true},
		{"parentbased_always_off", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.sampler+"="+tt.arg, func(t *testing.T) {
			clearOTELEnv(t)
			t.Setenv(EnvTracesExporter, "console")
			t.Setenv(EnvTracesSampler, tt.sampler)
			t.Setenv(EnvTracesSamplerArg, tt.arg)
			tp, shutdown, err := setupTracing(context.Background(), "svc", os.Getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = shutdown(context.Background()) }()
			tr := tp.Tracer("t")
			_, root := tr.Start(context.Background(), "root")
			_, child := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "child")
			if got := root.SpanContext().IsSampled(); got != tt.rootSampled {
				t.Errorf("root sampled = %v, want %v", got, tt.rootSampled)
			}
			if got := child.SpanContext().IsSampled(); got != tt.childSampled {
				t.Errorf("child of sampled remote parent sampled = %v, want %v", got, tt.childSampled)
			}
			root.End()
			child.End()
		})
	}
}

// otlpHTTP is a fake OTLP/HTTP collector.
type otlpHTTP struct {
	mu    sync.Mutex
	reqs  []*collectortrace.ExportTraceServiceRequest
	block chan struct{} // when non-nil, requests wait for it
}

func (c *otlpHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.block != nil {
		select {
		case <-c.block:
		case <-r.Context().Done():
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	req := &collectortrace.ExportTraceServiceRequest{}
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, req)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	resp, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(resp)
}

// spans returns the service name and span names received.
func received(reqs []*collectortrace.ExportTraceServiceRequest) (services, spans []string) {
	for _, req := range reqs {
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					services = append(services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans = append(spans, s.Name)
				}
			}
		}
	}
	return services, spans
}

func TestSetupTracingOTLPHTTP(t *testing.T) {
	col := &otlpHTTP{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	clearOTELEnv(t)
	t.Setenv(EnvTracesExporter, "otlp")
	t.Setenv(EnvOTLPTracesProtocol, "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	exportAndCheck(t, func() []*collectortrace.ExportTraceServiceRequest {
		col.mu.Lock()
		defer col.mu.Unlock()
		return slices.Clone(col.reqs)
	})
}

type otlpGRPC struct {
	collectortrace.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*collectortrace.ExportTraceServiceRequest
}

func (c *otlpGRPC) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func TestSetupTracingOTLPGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &otlpGRPC{}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, col)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	clearOTELEnv(t)
	t.Setenv(EnvTracesExporter, "otlp")
	t.Setenv(EnvOTLPProtocol, "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	exportAndCheck(t, func() []*collectortrace.ExportTraceServiceRequest {
		col.mu.Lock()
		defer col.mu.Unlock()
		return slices.Clone(col.reqs)
	})
}

// exportAndCheck creates spans through SetupTracing and checks that the
// collector got them, with the service name, by the time shutdown returns.
func exportAndCheck(t *testing.T, reqs func() []*collectortrace.ExportTraceServiceRequest) {
	t.Helper()
	tp, shutdown, err := SetupTracing(context.Background(), "streamprofile-test")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracer(TracerConfig{Provider: tp})
	if !tr.Enabled() {
		t.Fatal("tracer over the OTLP provider is disabled")
	}
	ctx, span := tr.Start(context.Background(), SpanDecode)
	_, child := tr.Start(ctx, SpanFeatureUpdate)
	child.End()
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	services, spans := received(reqs())
	slices.Sort(spans)
	if want := []string{SpanDecode, SpanFeatureUpdate}; !slices.Equal(spans, want) {
		t.Errorf("collector got spans %q, want %q", spans, want)
	}
	for _, s := range services {
		if s != "streamprofile-test" {
			t.Errorf("service.name = %q", s)
		}
	}
	if len(services) == 0 {
		t.Error("no service.name resource attribute received")
	}
}

// TestShutdownBoundedAndIdempotent: a collector that never answers does not
// hold shutdown past its context, and later calls return the first result
// without exporting again.
func TestShutdownBoundedAndIdempotent(t *testing.T) {
	col := &otlpHTTP{block: make(chan struct{})}
	srv := httptest.NewServer(col)
	defer srv.Close()
	defer close(col.block)
	clearOTELEnv(t)
	t.Setenv(EnvTracesExporter, "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	tp, shutdown, err := SetupTracing(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "stuck")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	first := shutdown(ctx)
	if first == nil {
		t.Fatal("shutdown against a collector that never answers returned nil, want a deadline error")
	}
	if second := shutdown(context.Background()); second != first {
		t.Errorf("second shutdown = %v, want the first result %v", second, first)
	}
}

func TestBoundedOnce(t *testing.T) {
	calls := 0
	stop := func(ctx context.Context) error {
		calls++
		<-ctx.Done()
		return ctx.Err()
	}
	shutdown := boundedOnce(stop, 20*time.Millisecond)
	for range 3 {
		if err := shutdown(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded from the bound", err)
		}
	}
	if calls != 1 {
		t.Errorf("stop ran %d times, want 1", calls)
	}
}
