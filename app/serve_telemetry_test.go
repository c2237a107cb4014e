package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/streamprofile/streamprofile/observability"
)

// TestHTTPTracing: each request is served in a server span named after
// its route pattern, continuing the caller's W3C trace; the span records
// method, route, status and request id but never the path (a user id) or
// the query; 5xx answers are errors; unknown methods are "_OTHER"; a
// request no route matches is named by its method alone. Tracing off
// returns no middleware.
func TestHTTPTracing(t *testing.T) {
	for _, tp := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		if HTTPTracing(tp) != nil {
			t.Errorf("HTTPTracing(%T) returned middleware", tp)
		}
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/profiles/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "rid-1")
		if r.PathValue("id") == "broken" {
			http.Error(w, "boom", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	h := HTTPTracing(tp)(mux)

	parentCtx, parent := tp.Tracer("client").Start(context.Background(), "client call")
	parent.End()
	tests := []struct {
		name, method, target string
		traced               bool
		wantName             string
		wantCode             int
		wantRoute            string
		wantError            bool
		wantMethod           string
	}{
		{"profile, traced by the caller", "GET", "/v1/profiles/alice@example.com?cursor=x", true, "GET /v1/profiles/{id}", 200, "/v1/profiles/{id}", false, "GET"},
		{"backend failure", "GET", "/v1/profiles/broken", false, "GET /v1/profiles/{id}", 503, "/v1/profiles/{id}", true, "GET"},
		{"no route", "GET", "/nowhere/alice", false, "GET", 404, "", false, "GET"},
		{"unknown method", "BREW", "/v1/profiles/alice", false, "_OTHER", 404, "", false, "_OTHER"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.Ended())
			req := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.traced {
				observability.Propagator().Inject(parentCtx, propagation.HeaderCarrier(req.Header))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.wantCode {
				t.Fatalf("status %d, want %d", w.Code, tc.wantCode)
			}
			ended := rec.Ended()
			if len(ended) != before+1 {
				t.Fatalf("%d spans ended, want 1", len(ended)-before)
			}
			sp := ended[len(ended)-1]
			if sp.Name() != tc.wantName || sp.SpanKind() != trace.SpanKindServer {
				t.Errorf("span %q (%v), want %q (server)", sp.Name(), sp.SpanKind(), tc.wantName)
			}
			if tc.traced && (sp.Parent().SpanID() != parent.SpanContext().SpanID() || sp.SpanContext().TraceID() != parent.SpanContext().TraceID() || !sp.Parent().IsRemote()) {
				t.Errorf("span parent %v, want the caller's %v", sp.Parent(), parent.SpanContext())
			}
			if !tc.traced && sp.Parent().IsValid() {
				t.Errorf("untraced request has parent %v", sp.Parent())
			}
			attrs := map[attribute.Key]attribute.Value{}
			for _, a := range sp.Attributes() {
				attrs[a.Key] = a.Value
				if s := a.Value.Emit(); len(s) > 0 && (strings.Contains(s, "alice") || strings.Contains(s, "cursor")) {
					t.Errorf("attribute %s = %q records the path or query", a.Key, s)
				}
			}
			if got := attrs["http.request.method"].AsString(); got != tc.wantMethod {
				t.Errorf("method %q, want %q", got, tc.wantMethod)
			}
			if got := attrs["http.response.status_code"].AsInt64(); got != int64(tc.wantCode) {
				t.Errorf("status attribute %d, want %d", got, tc.wantCode)
			}
			if got, ok := attrs["http.route"]; (tc.wantRoute != "") != ok || got.AsString() != tc.wantRoute {
				t.Errorf("route %q (present %v), want %q", got.AsString(), ok, tc.wantRoute)
			}
			if tc.wantRoute != "" && attrs[AttrRequestID].AsString() != "rid-1" {
				t.Errorf("request id %q, want rid-1", attrs[AttrRequestID].AsString())
			}
			if (sp.Status().Code == codes.Error) != tc.wantError {
				t.Errorf("status %v, want error %v", sp.Status(), tc.wantError)
			}
		})
	}
}
