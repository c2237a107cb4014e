package observability

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/internal/testenv"
)

// TestTraceThroughRealKafka produces a record carrying an emit span's
// context through the real broker, consumes it and checks that the consumer
// span continues the producer's trace, with the baggage.
func TestTraceThroughRealKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	tp, rec := newSDK(t, nil)
	tr := NewTracer(TracerConfig{Provider: tp, ConsumerGroup: "obs-test"})

	// Producer side: a replay tool's span, then the emit span of the record.
	member, err := baggage.NewMember("replay.run", "r-1")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	pctx, replay := tp.Tracer("replay").Start(baggage.ContextWithBaggage(ctx, bag), "replay")
	msg := kafka.Message{Topic: topic, Key: []byte("user-1"), Value: []byte(`{"schema":1,"type":"view"}`),
		Headers: []kafka.Header{{Key: "source", Value: []byte("replay")}}}
	_, emit := tr.StartEmit(pctx, &msg, OutputTrigger)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, msg); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
	End(emit, nil)
	replay.End()

	// Consumer side.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	got, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	cctx, consume := tr.StartConsume(context.Background(), &got)
	_, step := tr.Start(cctx, SpanDecode)
	step.End()
	consume.End()

	cs := consume.SpanContext()
	if cs.TraceID() != emit.SpanContext().TraceID() {
		t.Fatalf("consumer trace %v, want the producer's %v", cs.TraceID(), emit.SpanContext().TraceID())
	}
	var consumed, decoded bool
	for _, s := range rec.Ended() {
		switch s.SpanContext().SpanID() {
		case cs.SpanID():
			consumed = true
			if s.Parent().SpanID() != emit.SpanContext().SpanID() || !s.Parent().IsRemote() {
				t.Errorf("consume span parent %v, want the remote emit span %v", s.Parent(), emit.SpanContext())
			}
			a := attrs(s)
			if a["messaging.destination.name"].AsString() != topic || a["messaging.kafka.offset"].AsInt64() != got.Offset {
				t.Errorf("consume span attributes %v", a)
			}
			if a[AttrIngestTime].AsInt64() != got.Time.UnixMilli() || got.Time.IsZero() {
				t.Errorf("ingest time attribute %v, record time %v", a[AttrIngestTime], got.Time)
			}
		case step.SpanContext().SpanID():
			decoded = true
			if s.Parent().SpanID() != cs.SpanID() {
				t.Errorf("decode span parent %v, want the consume span", s.Parent())
			}
		}
	}
	if !consumed || !decoded {
		t.Fatalf("spans not recorded: consume %v decode %v", consumed, decoded)
	}
	if v := baggage.FromContext(cctx).Member("replay.run").Value(); v != "r-1" {
		t.Errorf("baggage through Kafka: replay.run = %q, want r-1", v)
	}
	if (KafkaCarrier{Headers: &got.Headers}).Get("source") != "replay" {
		t.Error("the record's own header was lost")
	}
	if sc := trace.SpanContextFromContext(cctx); sc.SpanID() != cs.SpanID() {
		t.Error("StartConsume's context does not hold the consume span")
	}
}
