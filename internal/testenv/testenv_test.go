package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/internal/testenv"
)

// ioTimeout bounds each test's traffic with the real services.
const ioTimeout = 60 * time.Second

// recorder is a testing.TB that records Skip and Fatal instead of acting on
// the real test; like testing.T, both end the calling goroutine.
type recorder struct {
	testing.TB
	name    string
	skipped bool
	failed  bool
	msg     string
}

func (r *recorder) Helper()      {}
func (r *recorder) Name() string { return r.name }
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) {
	r.failed, r.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}

// record runs fn with a recorder named name and returns the recorder when fn
// has returned or ended its goroutine.
func record(name string, fn func(testing.TB)) *recorder {
	r := &recorder{name: name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r
}

func TestMissingServiceSkipsOrFails(t *testing.T) {
	helpers := []struct {
		name string
		env  string
		call func(testing.TB)
	}{
		{"Kafka", testenv.EnvKafka, func(tb testing.TB) { testenv.Kafka(tb) }},
		{"ExclusiveKafka", testenv.EnvKafka, func(tb testing.TB) { testenv.ExclusiveKafka(tb) }},
		{"Redis", testenv.EnvRedis, func(tb testing.TB) { testenv.Redis(tb) }},
		{"RedisDB", testenv.EnvRedis, func(tb testing.TB) { testenv.RedisDB(tb) }},
		{"ExclusiveRedis", testenv.EnvRedis, func(tb testing.TB) { testenv.ExclusiveRedis(tb) }},
		{"RedisCluster", testenv.EnvRedisCluster, func(tb testing.TB) { testenv.RedisCluster(tb) }},
		{"RedisClusterClient", testenv.EnvRedisCluster, func(tb testing.TB) { testenv.RedisClusterClient(tb) }},
	}
	modes := []struct {
		requireReal string
		wantSkip    bool
	}{
		{requireReal: "", wantSkip: true},
		{requireReal: "0", wantSkip: true},
		{requireReal: "1", wantSkip: false},
	}
	for _, h := range helpers {
		for _, m := range modes {
			t.Run(fmt.Sprintf("%s/require=%q", h.name, m.requireReal), func(t *testing.T) {
				t.Setenv(h.env, "")
				t.Setenv(testenv.EnvRequireReal, m.requireReal)
				r := record(t.Name(), h.call)
				if r.skipped != m.wantSkip || r.failed == m.wantSkip {
					t.Fatalf("skipped=%v failed=%v (%q), want skipped=%v", r.skipped, r.failed, r.msg, m.wantSkip)
				}
				for _, want := range []string{h.env, "scripts/test.sh"} {
					if !strings.Contains(r.msg, want) {
						t.Errorf("message %q does not name %s", r.msg, want)
					}
				}
			})
		}
	}
}

func TestFaultHelpersNeedExclusiveAccess(t *testing.T) {
	testenv.Kafka(t)
	testenv.Redis(t)
	helpers := []struct {
		name string
		call func(testing.TB)
	}{
		{"StopKafka", testenv.StopKafka},
		{"KillKafka", testenv.KillKafka},
		{"StartKafka", testenv.StartKafka},
		{"RestartKafka", testenv.RestartKafka},
		{"StopRedis", testenv.StopRedis},
		{"KillRedis", testenv.KillRedis},
		{"StartRedis", testenv.StartRedis},
		{"RestartRedis", testenv.RestartRedis},
	}
	for _, h := range helpers {
		t.Run(h.name, func(t *testing.T) {
			r := record(t.Name(), h.call)
			if !r.failed || !strings.Contains(r.msg, testenv.ErrNotExclusive.Error()) {
				t.Fatalf("failed=%v msg=%q, want a failure with %q", r.failed, r.msg, testenv.ErrNotExclusive)
			}
		})
	}
}

func newWriter(brokers []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
}

func TestKafkaProduceConsume(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()

	sent := []kafka.Message{
		{Key: []byte("user-1"), Value: []byte(`{"event_type":"view"}`)},
		{Key: []byte("user-2"), Value: []byte(`{"event_type":"cart"}`)},
		{Key: []byte("user-1"), Value: []byte(`{"event_type":"purchase"}`)},
	}
	w := newWriter(brokers, topic)
	defer w.Close()
	if err := w.WriteMessages(ctx, sent...); err != nil {
		t.Fatalf("WriteMessages(acks=all): %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for i, want := range sent {
		got, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("ReadMessage %d: %v", i, err)
		}
		if got.Offset != int64(i) || string(got.Key) != string(want.Key) || string(got.Value) != string(want.Value) {
			t.Errorf("message %d = offset %d %s=%s, want offset %d %s=%s",
				i, got.Offset, got.Key, got.Value, i, want.Key, want.Value)
		}
	}
}

func TestTopicPartitionsAndCleanup(t *testing.T) {
	brokers := testenv.Kafka(t)
	for _, partitions := range []int{1, 3, 8} {
		var name string
		t.Run(fmt.Sprintf("partitions=%d", partitions), func(t *testing.T) {
			name = testenv.Topic(t, brokers, partitions)
			if other := testenv.Topic(t, brokers, partitions); other == name {
				t.Fatalf("two Topic calls returned the same name %q", name)
			}
			parts := topics(t, brokers)[name]
			if len(parts) != partitions {
				t.Fatalf("topic %s has partitions %v, want %d", name, parts, partitions)
			}
		})
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, ok := topics(t, brokers)[name]; !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("topic %s still exists 20s after its test ended", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// topics lists every topic with its partition ids (a metadata request for
// all topics, which never auto-creates one).
func topics(t *testing.T, brokers []string) map[string][]int {
	t.Helper()
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions()
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	out := map[string][]int{}
	for _, p := range parts {
		out[p.Topic] = append(out[p.Topic], p.ID)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// TestKafkaConsumerGroup checks that kafka-go's consumer groups (JoinGroup,
// SyncGroup, OffsetCommit, OffsetFetch) work against the test broker: a
// second member of the group resumes after the first one's commits.
func TestKafkaConsumerGroup(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, 2)
	group := topic + ".group"
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()
	w := newWriter(brokers, topic)
	defer w.Close()

	consume := func(want []string) {
		t.Helper()
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:           brokers,
			GroupID:           group,
			Topic:             topic,
			StartOffset:       kafka.FirstOffset,
			MaxWait:           100 * time.Millisecond,
			HeartbeatInterval: time.Second,
			JoinGroupBackoff:  200 * time.Millisecond,
		})
		defer func() {
			if err := r.Close(); err != nil {
				t.Errorf("closing group reader: %v", err)
			}
		}()
		var got []string
		for range want {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("FetchMessage in group %s after %v: %v", group, got, err)
			}
			got = append(got, string(m.Value))
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatalf("CommitMessages: %v", err)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("group %s consumed %v, want %v", group, got, want)
		}
	}

	first := []kafka.Message{{Key: []byte("a"), Value: []byte("m1")}, {Key: []byte("b"), Value: []byte("m2")}}
	if err := w.WriteMessages(ctx, first...); err != nil {
		t.Fatal(err)
	}
	consume([]string{"m1", "m2"})
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("c"), Value: []byte("m3")}); err != nil {
		t.Fatal(err)
	}
	consume([]string{"m3"})
}

func TestRedisDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()
	a := testenv.RedisDB(t)
	b := testenv.RedisDB(t)
	if a.Options().DB == b.Options().DB || a.Options().DB == 0 || b.Options().DB == 0 {
		t.Fatalf("RedisDB gave databases %d and %d, want two different non-zero ones", a.Options().DB, b.Options().DB)
	}
	if err := a.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if n, err := a.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE of a fresh database = %d, %v; want 0", n, err)
	}
	if err := a.Set(ctx, "profile:u1", "v1", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := a.Get(ctx, "profile:u1").Result(); err != nil || got != "v1" {
		t.Fatalf("GET = %q, %v; want v1", got, err)
	}
	if _, err := b.Get(ctx, "profile:u1").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET in the other test database: err = %v, want redis.Nil", err)
	}
}

func TestRedisDBFlushedAfterTest(t *testing.T) {
	addr := testenv.Redis(t)
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()
	var db int
	const key = "left-behind"
	t.Run("holder", func(t *testing.T) {
		c := testenv.RedisDB(t)
		db = c.Options().DB
		if err := c.Set(ctx, key, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	defer c.Close()
	if _, err := c.Get(ctx, key).Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET %s in database %d after its test ended: err = %v, want redis.Nil", key, db, err)
	}
}

func TestRedisCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()
	nodes := testenv.RedisCluster(t)
	if len(nodes) != 3 {
		t.Fatalf("RedisCluster = %v, want 3 nodes", nodes)
	}
	var prefix string
	t.Run("keys on every master", func(t *testing.T) {
		c, p := testenv.RedisClusterClient(t)
		prefix = p
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING: %v", err)
		}
		slots, err := c.ClusterSlots(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		owner := make([]string, 16384)
		for _, s := range slots {
			for i := s.Start; i <= s.End; i++ {
				owner[i] = s.Nodes[0].Addr
			}
		}
		masters := map[string]int{}
		for slot, addr := range owner {
			if addr == "" {
				t.Fatalf("slot %d has no master", slot)
			}
			masters[addr]++
		}
		if len(masters) != 3 {
			t.Fatalf("slots are served by %d masters (%v), want 3", len(masters), masters)
		}
		used := map[string]bool{}
		for i := range 64 {
			key := fmt.Sprintf("%sprofile:%d", prefix, i)
			if err := c.Set(ctx, key, i, 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", key, err)
			}
			slot, err := c.ClusterKeySlot(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			used[owner[slot]] = true
		}
		if len(used) != 3 {
			t.Fatalf("64 keys landed on %d masters, want all 3", len(used))
		}
		for i := range 64 {
			key := fmt.Sprintf("%sprofile:%d", prefix, i)
			if got, err := c.Get(ctx, key).Int(); err != nil || got != i {
				t.Fatalf("GET %s = %d, %v; want %d", key, got, err, i)
			}
		}
	})
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes})
	defer c.Close()
	err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		keys, _, err := node.Scan(ctx, 0, prefix+"*", 10000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			return fmt.Errorf("%s still holds %d keys with the test's prefix, e.g. %s", node.Options().Addr, len(keys), keys[0])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the test ended: %v", err)
	}
}

// TestStopStartKafkaKeepsData checks the fault helpers on the broker:
// StopKafka really stops it, StartKafka brings it back with its data.
func TestStopStartKafkaKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the broker (seconds); skipped with -short")
	}
	brokers := testenv.ExclusiveKafka(t)
	topic := testenv.Topic(t, brokers, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 2*ioTimeout)
	defer cancel()
	w := newWriter(brokers, topic)
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("survives a restart")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	testenv.StopKafka(t)
	if c, err := net.DialTimeout("tcp", brokers[0], time.Second); err == nil {
		c.Close()
		t.Fatalf("broker %s accepts connections after StopKafka", brokers[0])
	}
	testenv.StartKafka(t)

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("ReadMessage after restart: %v", err)
	}
	if string(m.Value) != "survives a restart" || m.Offset != 0 {
		t.Fatalf("after restart read offset %d %q, want offset 0 %q", m.Offset, m.Value, "survives a restart")
	}
}

// TestRestartRedisKeepsData checks the fault helpers on the standalone
// server: StopRedis really stops it, StartRedis brings it back with the
// append-only file's data, and the client reconnects.
func TestRestartRedisKeepsData(t *testing.T) {
	testenv.ExclusiveRedis(t)
	c := testenv.RedisDB(t)
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	defer cancel()
	if err := c.Set(ctx, "durable", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.StopRedis(t)
	pingCtx, pingCancel := context.WithTimeout(ctx, time.Second)
	defer pingCancel()
	if err := c.Ping(pingCtx).Err(); err == nil {
		t.Fatal("PING succeeds after StopRedis")
	}
	testenv.StartRedis(t)
	if got, err := c.Get(ctx, "durable").Result(); err != nil || got != "yes" {
		t.Fatalf("GET after restart = %q, %v; want yes", got, err)
	}
	testenv.RestartRedis(t)
	if got, err := c.Get(ctx, "durable").Result(); err != nil || got != "yes" {
		t.Fatalf("GET after RestartRedis = %q, %v; want yes", got, err)
	}
}
