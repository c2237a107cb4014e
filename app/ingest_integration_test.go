package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/features/featurestest"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// childEnv makes the test binary run an ingester instead of the tests: the
// crash tests start it as a separate process and SIGKILL it.
const childEnv = "STREAMPROFILE_TEST_CHILD_INGEST"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// childSpec is the ingester configuration handed to a child process.
type childSpec struct {
	Brokers []string
	Group   string
	Topic   string
	Redis   string
	DB      int
	Prefix  string
}

func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	in, err := app.NewIngester(app.IngestConfig{
		Brokers: s.Brokers, Group: s.Group, SessionTimeout: 6 * time.Second,
		Redis:         app.RedisConfig{Addr: s.Redis, DB: s.DB},
		Store:         features.StoreConfig{Prefix: s.Prefix},
		Pipeline:      pipeline.Config{Topic: s.Topic, FlushInterval: 5 * time.Millisecond, FlushEvents: 100, MaxBatch: 100},
		SnapshotTopic: s.Topic + ".examples",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	// Runs until killed; a SIGKILL gives it no chance to clean up.
	if err := in.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// sample reads the bundled REES46 sample once.
var sample = sync.OnceValues(func() ([]source.Record, error) {
	return source.ReadAll(source.REES46, app.DefaultData)
})

func sampleRecords(t *testing.T) []source.Record {
	t.Helper()
	recs, err := sample()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func publish(t *testing.T, brokers []string, topic string, recs []source.Record) {
	t.Helper()
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := make([]kafka.Message, 0, 2000)
	for i, r := range recs {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(r.Event.ProfileKey()), Value: r.Value})
		if len(msgs) == cap(msgs) || i == len(recs)-1 {
			if err := p.Send(context.Background(), msgs...); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
}

// env is one test's real Kafka topic and Redis database.
type env struct {
	brokers []string
	topic   string
	group   string
	rdb     *redis.Client
	prefix  string
	keyFile string // pseudonym key file, when the test uses one
}

func newEnv(t *testing.T, partitions int) *env {
	t.Helper()
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, partitions)
	if err := stream.EnsureTopics(context.Background(), brokers,
		stream.TopicSpec{Name: topic + ".dlq", Partitions: partitions},
		stream.TopicSpec{Name: topic + ".examples", Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	return &env{brokers: brokers, topic: topic, group: "g-" + topic, rdb: testenv.RedisDB(t), prefix: "sp"}
}

func (e *env) ingestConfig() app.IngestConfig {
	opts := e.rdb.Options()
	return app.IngestConfig{
		Brokers: e.brokers, Group: e.group,
		Redis:            app.RedisConfig{Addr: opts.Addr, DB: opts.DB},
		Store:            features.StoreConfig{Prefix: e.prefix},
		Pipeline:         pipeline.Config{Topic: e.topic, FlushInterval: 5 * time.Millisecond, FlushEvents: 200},
		SnapshotTopic:    e.topic + ".examples",
		PseudonymKeyFile: e.keyFile,
	}
}

func (e *env) store(t *testing.T) *features.Store {
	t.Helper()
	s, err := features.NewStore(e.rdb, features.StoreConfig{Prefix: e.prefix, Group: e.group})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startIngester runs an in-process ingester until the returned stop is
// called.
func (e *env) startIngester(t *testing.T) (*app.Ingester, func()) {
	t.Helper()
	return runIngester(t, e.ingestConfig(), "ingester", nil)
}

// runIngester runs an in-process ingester of cfg until the returned stop
// is called (at the latest when the test ends). stop reports Run's error
// under name, then calls stopped, when set, before Close.
func runIngester(t *testing.T, cfg app.IngestConfig, name string, stopped func(*app.Ingester)) (*app.Ingester, func()) {
	t.Helper()
	in, err := app.NewIngester(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if stopped != nil {
				stopped(in)
			}
			in.Close()
		})
	}
	t.Cleanup(stop)
	return in, stop
}

func (e *env) waitCaughtUp(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := app.WaitCaughtUp(ctx, e.brokers, e.topic, e.store(t), 50*time.Millisecond); err != nil {
		lag, _ := app.Lag(context.Background(), e.brokers, e.topic, e.store(t))
		t.Fatalf("ingesters did not catch up: %v (lag %v)", err, lag)
	}
}

// assertEqualsBatch compares every stored profile with the batch
// recomputation over events.
func (e *env) assertEqualsBatch(t *testing.T, events []stream.Event, at time.Time) {
	t.Helper()
	cfg := features.Config{}.WithDefaults()
	want := featurestest.Recompute(events, at, cfg)
	s := e.store(t)
	n := 0
	err := app.ScanUsers(context.Background(), s, func(u string) error {
		n++
		st, ok, err := s.LoadOne(context.Background(), u)
		if err != nil || !ok {
			return fmt.Errorf("user %s: ok=%v err=%v", u, ok, err)
		}
		w, found := want[u]
		if !found {
			return fmt.Errorf("user %s is in Redis but not in the data", u)
		}
		if d := featurestest.Diff(st.Evaluate(at, &cfg), w, 1e-9); len(d) > 0 {
			return fmt.Errorf("user %s differs from the batch recomputation: %v", u, d)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("%d users in Redis, %d in the batch recomputation", n, len(want))
	}
}

func events(recs []source.Record) ([]stream.Event, time.Time) {
	evs := make([]stream.Event, len(recs))
	var last time.Time
	for i, r := range recs {
		evs[i] = r.Event
		if r.Event.TS.After(last) {
			last = r.Event.TS
		}
	}
	return evs, last
}

// Replaying the bundled real sample through real Kafka and Redis gives, for
// every user, exactly the features a batch recomputation over the file gives;
// replaying it a second time changes nothing (every event is a duplicate).
func TestIngestEqualsBatchRecomputation(t *testing.T) {
	e := newEnv(t, 4)
	recs := sampleRecords(t)
	publish(t, e.brokers, e.topic, recs)
	in, stop := e.startIngester(t)
	e.waitCaughtUp(t, 2*time.Minute)
	evs, last := events(recs)
	e.assertEqualsBatch(t, evs, last)

	publish(t, e.brokers, e.topic, recs)
	e.waitCaughtUp(t, 2*time.Minute)
	stop()
	st := in.Topology().Stats()
	if got := st.Duplicates.Load(); got != int64(len(recs)) {
		t.Errorf("second replay: %d duplicates, want %d", got, len(recs))
	}
	if got := st.Applied.Load(); got != int64(len(recs)) {
		t.Errorf("applied %d events, want %d", got, len(recs))
	}
	e.assertEqualsBatch(t, evs, last)
	rt := float64(st.RoundTrips()) / float64(st.Consumed.Load())
	t.Logf("consumed %d, flushes %d, Redis round trips/event %.4f", st.Consumed.Load(), st.Flushes.Load(), rt)
}

// The ingester is killed (SIGKILL, no clean-up) and restarted at random
// points while events arrive; the final state still equals the batch
// recomputation: nothing lost, nothing counted twice.
func TestIngestKilledAndRestartedIsExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	e := newEnv(t, 4)
	recs := sampleRecords(t)
	opts := e.rdb.Options()
	spec, _ := json.Marshal(childSpec{Brokers: e.brokers, Group: e.group, Topic: e.topic, Redis: opts.Addr, DB: opts.DB, Prefix: e.prefix})
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// Publish in the background, in chunks, while the ingester crashes.
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; i < len(recs); i += 500 {
			publish(t, e.brokers, e.topic, recs[i:min(i+500, len(recs))])
			time.Sleep(150 * time.Millisecond)
		}
	}()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	s := e.store(t)
	progress := func() int64 {
		var n int64
		for p := 0; p < 4; p++ {
			cp, err := s.LoadCheckpoint(context.Background(), e.topic, p)
			if err != nil {
				t.Fatal(err)
			}
			n += max(cp.Next, 0)
		}
		return n
	}
	for kill := 1; kill <= 5; kill++ {
		before := progress()
		cmd := start()
		// Wait until this incarnation has flushed something, then kill it
		// at a random moment while it works.
		deadline := time.Now().Add(time.Minute)
		for progress() == before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("kill %d: checkpoints covered %d then %d records", kill, before, progress())
	}
	<-pubDone
	cmd := start()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	e.waitCaughtUp(t, 3*time.Minute)
	evs, last := events(recs)
	e.assertEqualsBatch(t, evs, last)
}

// Two ingesters share the partitions of one consumer group; the second
// joins mid-stream and the first leaves before the end (two rebalances).
func TestTwoIngestersShareTheGroup(t *testing.T) {
	e := newEnv(t, 4)
	recs := sampleRecords(t)
	half := len(recs) / 2
	_, stopA := e.startIngester(t)
	publish(t, e.brokers, e.topic, recs[:half/2])
	_, stopB := e.startIngester(t)
	publish(t, e.brokers, e.topic, recs[half/2:half])
	time.Sleep(500 * time.Millisecond)
	stopA()
	publish(t, e.brokers, e.topic, recs[half:])
	e.waitCaughtUp(t, 3*time.Minute)
	stopB()
	evs, last := events(recs)
	e.assertEqualsBatch(t, evs, last)
}

// Every kind of bad record goes to the DLQ with its reason, the original
// bytes and headers and the source coordinates; good records around them
// are applied and the partition moves on.
func TestBadRecordsGoToTheDLQ(t *testing.T) {
	e := newEnv(t, 1)
	future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	good := func(id, ts string) string {
		return `{"schema":1,"event_id":"` + id + `","type":"view","user_id":"u1","ts":"` + ts + `","item_id":"i1","price":5}`
	}
	cases := []struct {
		key, value string
		reason     stream.Reason
	}{
		{"u1", `not json`, stream.ReasonMalformed},
		{"u1", `{"schema":2,"event_id":"a","type":"view","user_id":"u1","ts":"2024-01-01T00:00:00Z","item_id":"i"}`, stream.ReasonUnknownSchema},
		{"u1", `{"schema":1,"type":"view","user_id":"u1","ts":"2024-01-01T00:00:00Z","item_id":"i"}`, stream.ReasonMissingField},
		{"u1", `{"schema":1,"event_id":"b","type":"view","user_id":"u1","ts":"yesterday","item_id":"i"}`, stream.ReasonBadTime},
		{"u1", `{"schema":1,"event_id":"c","type":"purchase","user_id":"u1","ts":"2024-01-01T00:00:00Z","item_id":"i","price":-3}`, stream.ReasonNegativePrice},
		{"u1", `{"schema":1,"event_id":"d","type":"view","user_id":"u1","ts":"` + future + `","item_id":"i"}`, stream.ReasonFutureTime},
		{"u1", `{"schema":1,"event_id":"e","type":"teleport","user_id":"u1","ts":"2024-01-01T00:00:00Z"}`, stream.ReasonBadField},
		{"someone-else", good("f", "2024-01-01T00:00:00Z"), stream.ReasonKeyMismatch},
		{"u1", good("late", "2023-12-31T00:00:00Z"), stream.ReasonLate},
	}
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: e.brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []kafka.Message
	msgs = append(msgs, kafka.Message{Topic: e.topic, Key: []byte("u1"), Value: []byte(good("g1", "2024-01-01T10:00:00Z"))})
	for i, c := range cases {
		msgs = append(msgs, kafka.Message{Topic: e.topic, Key: []byte(c.key), Value: []byte(c.value),
			Headers: []kafka.Header{{Key: "origin", Value: []byte(strconv.Itoa(i))}}})
	}
	msgs = append(msgs, kafka.Message{Topic: e.topic, Key: []byte("u1"), Value: []byte(good("g2", "2024-01-01T10:01:00Z"))})
	if err := p.Send(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	_, stop := e.startIngester(t)
	e.waitCaughtUp(t, time.Minute)
	stop()

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: e.topic + ".dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, c := range cases {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("DLQ record %d: %v", i, err)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if got := stream.Reason(h[stream.HeaderReason]); got != c.reason {
			t.Errorf("record %d: reason %q, want %q (error %q)", i, got, c.reason, h[stream.HeaderError])
		}
		if string(m.Value) != c.value || string(m.Key) != c.key {
			t.Errorf("record %d: DLQ value/key not the original bytes", i)
		}
		if h["origin"] != strconv.Itoa(i) || h[stream.HeaderSourceTopic] != e.topic ||
			h[stream.HeaderSourcePartition] != "0" || h[stream.HeaderSourceOffset] != strconv.Itoa(i+1) || h[stream.HeaderError] == "" {
			t.Errorf("record %d: headers %v", i, h)
		}
	}
	st, ok, err := e.store(t).LoadOne(context.Background(), "u1")
	if err != nil || !ok {
		t.Fatalf("u1: %v %v", ok, err)
	}
	cfg := features.Config{}.WithDefaults()
	if v := st.Evaluate(time.Date(2024, 1, 1, 10, 1, 0, 0, time.UTC), &cfg).Vector; v[features.ViewsTotal] != 2 {
		t.Fatalf("views_total %v, want the 2 good events", v[features.ViewsTotal])
	}
}
