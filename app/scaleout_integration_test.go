package app_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/features/featurestest"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// rekeyed returns recs followed, record by record, by copies-1 copies whose
// user, session and event ids carry the suffix "~k": a larger stream with
// the sample's event-time order and mix, and copies× the users.
func rekeyed(t *testing.T, recs []source.Record, copies int) []source.Record {
	t.Helper()
	dec := stream.NewDecoder(stream.Limits{}, nil)
	out := make([]source.Record, 0, len(recs)*copies)
	for _, r := range recs {
		out = append(out, r)
		for k := 1; k < copies; k++ {
			ev := r.Event
			sfx := "~" + strconv.Itoa(k)
			ev.EventID += sfx
			if ev.UserID != "" {
				ev.UserID += sfx
			}
			if ev.AnonymousID != "" {
				ev.AnonymousID += sfx
			}
			if ev.SessionID != "" {
				ev.SessionID += sfx
			}
			v, err := stream.Encode(&ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dec.Decode(v)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, source.Record{Event: got, Value: v, Line: r.Line})
		}
	}
	return out
}

// assertStoreEqualsBatch compares every profile in s (on every master of a
// Cluster) with the batch recomputation over evs.
func assertStoreEqualsBatch(t *testing.T, s *features.Store, evs []stream.Event, at time.Time) {
	t.Helper()
	cfg := features.Config{}.WithDefaults()
	want := featurestest.Recompute(evs, at, cfg)
	ctx := context.Background()
	var mu sync.Mutex
	n := 0
	var counted, events float64
	err := app.ScanUsers(ctx, s, func(u string) error {
		st, ok, err := s.LoadOne(ctx, u)
		if err != nil || !ok {
			return fmt.Errorf("user %s: ok=%v err=%v", u, ok, err)
		}
		w, found := want[u]
		if !found {
			return fmt.Errorf("user %s is stored but not in the data", u)
		}
		got := st.Evaluate(at, &cfg)
		if d := featurestest.Diff(got, w, 1e-9); len(d) > 0 {
			return fmt.Errorf("user %s differs from the batch recomputation: %v", u, d)
		}
		mu.Lock()
		n++
		counted += got.Vector[features.ViewsTotal] + got.Vector[features.CartsTotal] + got.Vector[features.PurchasesTotal]
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("%d users stored, %d in the batch recomputation", n, len(want))
	}
	for _, w := range want {
		events += w.Vector[features.ViewsTotal] + w.Vector[features.CartsTotal] + w.Vector[features.PurchasesTotal]
	}
	if counted != events {
		t.Fatalf("stored profiles count %v events, the data %v", counted, events)
	}
}

// Three ingesters share one consumer group on a 6-partition topic, with
// their state in the real 3-master Redis Cluster. While the sample and a
// re-keyed copy (twice the users) are published at a steady rate, they join
// one after the other and two of them leave, so partitions move four times
// mid-stream. The final profiles equal the batch recomputation, no event
// counted twice, and every handover is flushed: no record is processed by
// two members.
func TestScaleOutOnRedisCluster(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, 6)
	if err := stream.EnsureTopics(context.Background(), brokers,
		stream.TopicSpec{Name: topic + ".dlq", Partitions: 6},
		stream.TopicSpec{Name: topic + ".examples", Partitions: 6}); err != nil {
		t.Fatal(err)
	}
	nodes := testenv.RedisCluster(t)
	cc, prefix := testenv.RedisClusterClient(t)
	prefix = strings.TrimSuffix(prefix, ":")
	group := "g-" + topic
	store, err := features.NewStore(cc, features.StoreConfig{Prefix: prefix, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	recs := rekeyed(t, sampleRecords(t), 2)

	var consumed sync.Map // ingester name → consumed records
	start := func(name string) func() {
		_, stop := runIngester(t, app.IngestConfig{
			Brokers: brokers, Group: group, SessionTimeout: 6 * time.Second,
			Redis:         app.RedisConfig{Cluster: nodes},
			Store:         features.StoreConfig{Prefix: prefix},
			Pipeline:      pipeline.Config{Topic: topic, FlushInterval: 5 * time.Millisecond, FlushEvents: 200},
			SnapshotTopic: topic + ".examples",
		}, "ingester "+name, func(in *app.Ingester) {
			st := in.Topology().Stats()
			consumed.Store(name, st.Consumed.Load())
			t.Logf("ingester %s: consumed %d, applied %d, replayed %d, flushes %d", name,
				st.Consumed.Load(), st.Applied.Load(), st.Replayed.Load(), st.Flushes.Load())
		})
		return stop
	}
	// The publisher sends 100 chunks, one every 100 ms; membership changes
	// after chunks 15 (B joins), 35 (C joins), 60 (A leaves) and 80 (B
	// leaves).
	const chunks = 100
	size := (len(recs) + chunks - 1) / chunks
	reached := make([]chan struct{}, chunks+1)
	for i := range reached {
		reached[i] = make(chan struct{})
	}
	prod, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	pubErr := make(chan error, 1)
	go func() {
		for i := 0; i < chunks; i++ {
			var msgs []kafka.Message
			for _, r := range recs[min(i*size, len(recs)):min((i+1)*size, len(recs))] {
				msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(r.Event.ProfileKey()), Value: r.Value})
			}
			if err := prod.Send(context.Background(), msgs...); err != nil {
				pubErr <- err
				return
			}
			close(reached[i+1])
			time.Sleep(100 * time.Millisecond)
		}
	}()
	wait := func(chunk int) {
		select {
		case <-reached[chunk]:
		case err := <-pubErr:
			t.Fatalf("publishing: %v", err)
		}
	}
	stopA := start("A")
	wait(15)
	stopB := start("B")
	wait(35)
	stopC := start("C")
	wait(60)
	stopA()
	wait(80)
	stopB()
	wait(chunks)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := app.WaitCaughtUp(ctx, brokers, topic, store, 50*time.Millisecond); err != nil {
		t.Fatalf("not caught up: %v", err)
	}
	stopC()
	evs, last := events(recs)
	assertStoreEqualsBatch(t, store, evs, last)
	var total int64
	for _, name := range []string{"A", "B", "C"} {
		n, _ := consumed.Load(name)
		if n.(int64) == 0 {
			t.Errorf("ingester %s processed nothing: the rebalances did not move partitions to it", name)
		}
		total += n.(int64)
	}
	if total != int64(len(recs)) {
		t.Errorf("the ingesters processed %d records for %d published: a handover was not flushed", total, len(recs))
	}
}
