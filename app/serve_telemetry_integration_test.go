package app_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/streamprofile/streamprofile/api"
	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/observability"
)

// TestServeTelemetry runs the serve role with its admin on real Redis and
// Kafka: /readyz is ready with the check "redis", /metrics serves the
// runtime metrics, and an API request that carries a caller's traceparent
// is served in a server span of that trace, named after its route.
func TestServeTelemetry(t *testing.T) {
	e := newEnv(t, 1)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())), sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	admin, err := app.NewAdmin(app.AdminConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	token := "test-token-" + e.topic
	opts := e.rdb.Options()
	s, err := app.NewServer(app.ServeConfig{
		API:     api.Config{Tokens: []api.TokenSpec{{Name: "tester", SHA256: api.HashToken(token), Scopes: []api.Scope{api.ScopeProfilesRead}}}},
		Brokers: e.brokers, Redis: app.RedisConfig{Addr: opts.Addr, DB: opts.DB},
		Store:     features.StoreConfig{Prefix: e.prefix, Group: e.group},
		Telemetry: app.Telemetry{Tracing: tp, Admin: admin},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- admin.Serve(ctx, func(ctx context.Context) error { return s.API().Serve(ctx, ln) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := waitAddr(t, admin)

	code, body := httpGet(t, base+"/readyz")
	var ready readyReport
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || checkNames(ready) != "redis" {
		t.Errorf("/readyz: %d %s, want 200 with the check redis", code, body)
	}
	if code, body := httpGet(t, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines ") || !strings.Contains(body, "process_cpu_seconds_total ") {
		t.Errorf("/metrics: %d, without the runtime metrics", code)
	}

	callerCtx, caller := tp.Tracer("client").Start(context.Background(), "client call")
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/v1/profiles/nobody", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	observability.Propagator().Inject(callerCtx, propagation.HeaderCarrier(req.Header))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	caller.End()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /v1/profiles/nobody: %d, want 404", resp.StatusCode)
	}
	var found bool
	for _, sp := range rec.Ended() {
		if sp.SpanContext().TraceID() != caller.SpanContext().TraceID() || sp.Parent().SpanID() != caller.SpanContext().SpanID() {
			continue
		}
		found = true
		attrs := map[string]string{}
		for _, a := range sp.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if sp.Name() != "GET /v1/profiles/{id}" || attrs["http.response.status_code"] != "404" ||
			attrs[string(app.AttrRequestID)] != resp.Header.Get("X-Request-Id") || attrs[string(app.AttrRequestID)] == "" {
			t.Errorf("server span %q %v; want GET /v1/profiles/{id}, 404 and the response's request id %q", sp.Name(), attrs, resp.Header.Get("X-Request-Id"))
		}
	}
	if !found {
		t.Error("no server span in the caller's trace")
	}
}
