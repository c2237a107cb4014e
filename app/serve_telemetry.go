package app

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/observability"
)

// AttrRequestID is the X-Request-Id of the response on a server span of
// the profile API, to find a request's trace from its logs or its client.
const AttrRequestID = attribute.Key("streamprofile.request_id")

// HTTPTracing returns middleware (api.Config.Middleware) that serves each
// request of the profile API in a server span. The span continues the
// caller's trace when the request carries W3C traceparent headers, and is
// named after the method and the route pattern ("GET
// /v1/profiles/{id}"); it records the method, the route, the status code
// and the request id, never the path or the query (they hold user ids and
// cursors). A 5xx answer marks it as an error. With tp nil or a no-op
// provider it returns nil: no middleware.
func HTTPTracing(tp trace.TracerProvider) func(http.Handler) http.Handler {
	if !observability.NewTracer(observability.TracerConfig{Provider: tp}).Enabled() {
		return nil
	}
	tr := tp.Tracer(observability.ScopeName)
	prop := observability.Propagator()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			method := httpMethod(r.Method)
			ctx, span := tr.Start(ctx, method.Value.AsString(), trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(method))
			defer span.End()
			sw := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			r = r.WithContext(ctx)
			next.ServeHTTP(sw, r)
			// The mux sets the pattern on the request it was given.
			if _, route, ok := strings.Cut(r.Pattern, " "); ok && route != "/" {
				span.SetName(method.Value.AsString() + " " + route)
				span.SetAttributes(semconv.HTTPRoute(route))
			}
			span.SetAttributes(semconv.HTTPResponseStatusCode(sw.code), AttrRequestID.String(w.Header().Get("X-Request-Id")))
			if sw.code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(sw.code))
			}
		})
	}
}

// httpMethod is the http.request.method attribute: the method, or
// "_OTHER" for one that is not standard.
func httpMethod(m string) attribute.KeyValue {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return semconv.HTTPRequestMethodKey.String(m)
	}
	return semconv.HTTPRequestMethodKey.String("_OTHER")
}

// statusRecorder notes the status code of a response.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusRecorder) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
