package observability

import (
	"context"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// newSDK returns an SDK tracer provider that records spans synchronously
// in memory, with sampler (nil: always on).
func newSDK(t testing.TB, sampler sdktrace.Sampler) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	if sampler == nil {
		sampler = sdktrace.AlwaysSample()
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

func hdrs(kv ...string) []kafka.Header {
	var h []kafka.Header
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, kafka.Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return h
}

func TestKafkaCarrierGet(t *testing.T) {
	tests := []struct {
		name    string
		headers []kafka.Header
		key     string
		want    string
	}{
		{"absent", hdrs("a", "1"), "traceparent", ""},
		{"present", hdrs("traceparent", "x"), "traceparent", "x"},
		{"case-insensitive", hdrs("TraceParent", "x"), "traceparent", "x"},
		{"last of duplicates wins", hdrs("traceparent", "old", "b", "2", "traceparent", "new"), "traceparent", "new"},
		{"empty value", hdrs("baggage", ""), "baggage", ""},
		{"no headers", nil, "traceparent", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.headers
			if got := (KafkaCarrier{Headers: &h}).Get(tt.key); got != tt.want {
				t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestKafkaCarrierSetReplacesEveryMatch(t *testing.T) {
	tests := []struct {
		name    string
		headers []kafka.Header
		want    []kafka.Header
	}{
		{"appends when absent", hdrs("error", "e"), hdrs("error", "e", "traceparent", "v")},
		{"replaces one", hdrs("traceparent", "old", "error", "e"), hdrs("error", "e", "traceparent", "v")},
		{"collapses duplicates of any case", hdrs("Traceparent", "1", "x", "y", "traceparent", "2"), hdrs("x", "y", "traceparent", "v")},
		{"nil headers", nil, hdrs("traceparent", "v")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := slices.Clone(tt.headers)
			KafkaCarrier{Headers: &h}.Set("traceparent", "v")
			if !headersEqual(h, tt.want) {
				t.Errorf("after Set: %v, want %v", h, tt.want)
			}
		})
	}
}

// TestKafkaCarrierSetLeavesSharedHeaders: a record built from a consumed
// one shares its header array; injecting into it must not alter the
// consumed record.
func TestKafkaCarrierSetLeavesSharedHeaders(t *testing.T) {
	consumed := hdrs("traceparent", "parent", "source", "web")
	emitted := consumed[:len(consumed):len(consumed)]
	KafkaCarrier{Headers: &emitted}.Set("traceparent", "child")
	if !headersEqual(consumed, hdrs("traceparent", "parent", "source", "web")) {
		t.Errorf("consumed record's headers changed to %v", consumed)
	}
	if !headersEqual(emitted, hdrs("source", "web", "traceparent", "child")) {
		t.Errorf("emitted headers %v", emitted)
	}
}

func headersEqual(a, b []kafka.Header) bool {
	return slices.EqualFunc(a, b, func(x, y kafka.Header) bool { return x.Key == y.Key && string(x.Value) == string(y.Value) })
}

func TestKafkaCarrierKeysUnique(t *testing.T) {
	h := hdrs("a", "1", "traceparent", "2", "A", "3", "baggage", "4")
	got := KafkaCarrier{Headers: &h}.Keys()
	if want := []string{"a", "traceparent", "baggage"}; !slices.Equal(got, want) {
		t.Errorf("Keys() = %q, want %q", got, want)
	}
	if got := (KafkaCarrier{}).Keys(); got != nil {
		t.Errorf("zero carrier Keys() = %q, want nil", got)
	}
	KafkaCarrier{}.Set("k", "v") // must not panic
}

// TestHeaderRoundTrip: inject → extract gives the same trace and span id,
// flags and baggage, as a remote span context.
func TestHeaderRoundTrip(t *testing.T) {
	tp, _ := newSDK(t, nil)
	ctx, span := tp.Tracer("test").Start(context.Background(), "produce")
	defer span.End()
	member, err := baggage.NewMember("tenant", "shop-7")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx = baggage.ContextWithBaggage(ctx, bag)

	headers := hdrs("unrelated", "keep")
	InjectHeaders(ctx, &headers)
	for _, k := range []string{"traceparent", "baggage", "unrelated"} {
		if (KafkaCarrier{Headers: &headers}).Get(k) == "" {
			t.Errorf("header %q missing after inject: %v", k, headers)
		}
	}

	got := ExtractHeaders(context.Background(), headers)
	sc := trace.SpanContextFromContext(got)
	want := span.SpanContext()
	if sc.TraceID() != want.TraceID() || sc.SpanID() != want.SpanID() || sc.TraceFlags() != want.TraceFlags() {
		t.Errorf("extracted %v/%v flags %v, want %v/%v flags %v",
			sc.TraceID(), sc.SpanID(), sc.TraceFlags(), want.TraceID(), want.SpanID(), want.TraceFlags())
	}
	if !sc.IsRemote() {
		t.Error("extracted span context is not marked remote")
	}
	if v := baggage.FromContext(got).Member("tenant").Value(); v != "shop-7" {
		t.Errorf("baggage tenant = %q, want shop-7", v)
	}
}

func TestInjectWithoutSpanChangesNothing(t *testing.T) {
	headers := hdrs("a", "1")
	InjectHeaders(context.Background(), &headers)
	if !headersEqual(headers, hdrs("a", "1")) {
		t.Errorf("headers changed to %v", headers)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { InjectHeaders(ctx, &headers) }); n != 0 {
		t.Errorf("InjectHeaders without a span: %v allocs, want 0", n)
	}
}

func TestExtractInvalidHeadersLeavesContext(t *testing.T) {
	for _, tp := range []string{"", "garbage", "00-00000000000000000000000000000000-0000000000000000-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		ctx := ExtractHeaders(context.Background(), hdrs("traceparent", tp))
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			t.Errorf("traceparent %q extracted as valid %v", tp, sc)
		}
	}
}

// FuzzExtractHeaders: extraction never fails loudly, and whatever valid
// context it finds survives another inject → extract unchanged.
func FuzzExtractHeaders(f *testing.F) {
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "congo=t61rcWkgMzE", "k=v;p=1")
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "", "")
	f.Add("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09-extra", "a=1,b=2", "bad baggage")
	f.Add("", "", "%zz=1")
	f.Fuzz(func(t *testing.T, traceparent, tracestate, bag string) {
		h := hdrs("traceparent", traceparent, "tracestate", tracestate, "baggage", bag)
		ctx := ExtractHeaders(context.Background(), h)
		sc := trace.SpanContextFromContext(ctx)
		if !sc.IsValid() {
			return
		}
		var out []kafka.Header
		InjectHeaders(ctx, &out)
		sc2 := trace.SpanContextFromContext(ExtractHeaders(context.Background(), out))
		if !sc.Equal(sc2) {
			t.Fatalf("re-extracted %v, want %v", sc2, sc)
		}
		if got, want := baggage.FromContext(ExtractHeaders(context.Background(), out)).String(), baggage.FromContext(ctx).String(); got != want {
			t.Fatalf("baggage re-extracted %q, want %q", got, want)
		}
	})
}
