package stream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/stream"
)

// gatedProcessor reads from the log start and processes nothing until
// its gate opens: records appended after the assignment wait in its queue.
type gatedProcessor struct {
	gate <-chan struct{}
	done chan<- int
}

func (p *gatedProcessor) Resume(context.Context) (int64, error) { return kafka.FirstOffset, nil }

func (p *gatedProcessor) Run(ctx context.Context, f *stream.Feed) error {
	select {
	case <-ctx.Done():
		return nil
	case <-p.gate:
	}
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-f.Messages():
			if !ok {
				return nil
			}
			n++
			f.Processed(&m)
			if f.Lag() == 0 {
				p.done <- n
				<-ctx.Done()
				return nil
			}
		}
	}
}

// A partition assigned while empty reports lag 0; records appended after
// the assignment raise its lag before the processor has handled any of
// them (the fetcher sees their high watermark), so a readiness check on
// the lag does not call the group caught up while records wait in its
// queue. Once they are processed the lag is 0 again.
func TestLagCountsRecordsAppendedAfterTheAssignment(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, 1)
	gate, done := make(chan struct{}), make(chan int, 1)
	g, err := stream.NewGroup(stream.GroupConfig{
		Brokers: brokers, GroupID: "lag-" + topic, Topic: topic, MaxWait: 100 * time.Millisecond,
	}, func(stream.Partition) (stream.Processor, error) { return &gatedProcessor{gate: gate, done: done}, nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	lag := func() int64 {
		if l, ok := g.Assigned()[0]; ok {
			return l
		}
		return -2
	}
	waitFor := func(what string, ok func(lag int64) bool) {
		t.Helper()
		for {
			l := lag()
			if ok(l) {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("waiting for %s: lag %d", what, l)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the empty partition's lag 0", func(l int64) bool { return g.Joined() && l == 0 })

	const n = 50
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchSize: n, BatchTimeout: time.Millisecond}
	defer w.Close()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("u"), Value: []byte(fmt.Sprintf("record %d", i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor("the lag to count the queued records", func(l int64) bool { return l == n })
	close(gate)
	select {
	case got := <-done:
		if got != n {
			t.Fatalf("lag 0 after %d records, want %d", got, n)
		}
	case <-ctx.Done():
		t.Fatalf("processor did not catch up: lag %d", lag())
	}
}
