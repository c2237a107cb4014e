package observability

import (
	"context"
	"slices"
	"strings"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
)

// KafkaCarrier adapts the headers of a Kafka message to a
// propagation.TextMapCarrier, so any OpenTelemetry propagator can inject into
// and extract from them.
//
// Kafka header keys are byte strings and may repeat; header names of the W3C
// formats are lower case. KafkaCarrier therefore matches keys without regard
// to case, Get returns the value of the last matching header (the most recent
// injection wins), and Set replaces every matching header with one, so that
// re-injecting into a forwarded record (a dead letter keeps the original
// headers) never leaves two traceparent headers behind.
//
// The zero value (nil Headers) reads as empty and ignores Set.
type KafkaCarrier struct {
	Headers *[]kafka.Header
}

var _ propagation.TextMapCarrier = KafkaCarrier{}

// Get returns the value of the last header named key, or "".
func (c KafkaCarrier) Get(key string) string {
	if c.Headers == nil {
		return ""
	}
	h := *c.Headers
	for i := len(h) - 1; i >= 0; i-- {
		if strings.EqualFold(h[i].Key, key) {
			return string(h[i].Value)
		}
	}
	return ""
}

// Set replaces the headers named key with one holding value, appended last.
// When it removes headers it builds a new slice rather than filtering in
// place, so a message whose headers share a backing array with another's
// (a record built from a consumed one) never changes the other.
func (c KafkaCarrier) Set(key, value string) {
	if c.Headers == nil {
		return
	}
	h := *c.Headers
	nh := kafka.Header{Key: key, Value: []byte(value)}
	i := slices.IndexFunc(h, func(x kafka.Header) bool { return strings.EqualFold(x.Key, key) })
	if i < 0 {
		*c.Headers = append(h, nh)
		return
	}
	out := make([]kafka.Header, 0, len(h))
	out = append(out, h[:i]...)
	for _, x := range h[i+1:] {
		if !strings.EqualFold(x.Key, key) {
			out = append(out, x)
		}
	}
	*c.Headers = append(out, nh)
}

// Keys lists the header keys, each once, in first-seen order.
func (c KafkaCarrier) Keys() []string {
	if c.Headers == nil {
		return nil
	}
	h := *c.Headers
	keys := make([]string, 0, len(h))
next:
	for _, x := range h {
		for _, k := range keys {
			if strings.EqualFold(k, x.Key) {
				continue next
			}
		}
		keys = append(keys, x.Key)
	}
	return keys
}

// propagator is the W3C trace context + baggage propagator used for Kafka
// headers. It is stateless and never changed.
var propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// Propagator returns the propagator this package uses for Kafka headers: W3C
// traceparent/tracestate and W3C baggage. Pass it to otel.SetTextMapPropagator
// if other code in the process uses the global propagator.
func Propagator() propagation.TextMapPropagator { return propagator }

// InjectHeaders writes the span context and baggage of ctx into headers
// (traceparent, tracestate, baggage), replacing any already there. When ctx
// carries neither a valid span context nor baggage it changes nothing and
// allocates nothing.
func InjectHeaders(ctx context.Context, headers *[]kafka.Header) {
	propagator.Inject(ctx, KafkaCarrier{Headers: headers})
}

// ExtractHeaders returns ctx with the remote span context and baggage found in
// headers. Invalid or absent headers leave ctx as it is.
func ExtractHeaders(ctx context.Context, headers []kafka.Header) context.Context {
	return propagator.Extract(ctx, KafkaCarrier{Headers: &headers})
}
