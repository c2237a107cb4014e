package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/sink/scorer"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// liveRole is a role running in the background until the test ends.
type liveRole struct {
	name   string
	exited chan struct{}
	err    error
}

// startLiveRole runs run until the test ends, then closes.
func startLiveRole(t *testing.T, name string, run func(context.Context) error, closeRole func() error) *liveRole {
	t.Helper()
	r := &liveRole{name: name, exited: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(r.exited)
		r.err = run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.exited
		if r.err != nil {
			t.Errorf("%s: %v", name, r.err)
		}
		closeRole()
	})
	return r
}

func (r *liveRole) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// liveOutput is an output the scorer wrote: its version and what caused it.
type liveOutput struct {
	ModelVersion int64  `json:"model_version"`
	Cause        string `json:"cause"`
}

// liveTopic reads a one-partition topic from the start, in the
// background, until the test ends.
type liveTopic struct {
	mu   sync.Mutex
	outs []liveOutput
}

func followLive(t *testing.T, brokers []string, topic string) *liveTopic {
	t.Helper()
	lt := &liveTopic{}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			var o liveOutput
			if err := json.Unmarshal(m.Value, &o); err != nil {
				t.Errorf("%s: %v: %s", topic, err, m.Value)
				return
			}
			lt.mu.Lock()
			lt.outs = append(lt.outs, o)
			lt.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	return lt
}

func (lt *liveTopic) all() []liveOutput {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return slices.Clone(lt.outs)
}

func (lt *liveTopic) len() int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return len(lt.outs)
}

func liveWait(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveSample reads the bundled REES46 sample.
func liveSample(t *testing.T) []source.Record {
	t.Helper()
	recs, err := source.ReadAll(source.REES46, app.DefaultData)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// liveFeed publishes records to Kafka a chunk at a time, as a live
// clickstream, up to the allowance the test raises step by step, so that
// fresh events arrive after each step.
type liveFeed struct {
	allow atomic.Int64
	sent  atomic.Int64
	total int64
}

func startLiveFeed(t *testing.T, brokers []string, topic string, recs []source.Record, allow int) *liveFeed {
	t.Helper()
	f := &liveFeed{total: int64(len(recs))}
	f.allow.Store(int64(allow))
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	const chunk, pause = 100, 100 * time.Millisecond
	go func() {
		defer close(done)
		for pos := 0; pos < len(recs) && ctx.Err() == nil; {
			end := min(pos+chunk, int(f.allow.Load()))
			if end <= pos {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			msgs := make([]kafka.Message, 0, end-pos)
			for _, r := range recs[pos:end] {
				msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(r.Event.ProfileKey()), Value: r.Value})
			}
			if err := p.Send(ctx, msgs...); err != nil {
				if ctx.Err() == nil {
					t.Errorf("feed: %v", err)
				}
				return
			}
			pos = end
			f.sent.Store(int64(pos))
			time.Sleep(pause)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; p.Close() })
	return f
}

// raise lets the feed publish up to the given fraction of the records.
func (f *liveFeed) raise(fraction float64) { f.allow.Store(int64(fraction * float64(f.total))) }

// flowing reports whether the feed has records it is allowed to publish
// and has not yet.
func (f *liveFeed) flowing() bool { return f.sent.Load() < min(f.allow.Load(), f.total) }

// Issue 3's Done-when, on the running system: an ingester, a trainer (its
// gate off, so that versions stay candidates) and a score role run on a live
// replay of the bundled sample through real Kafka, with profiles in Redis
// and the registry in the Redis Cluster. Once the trainer has cut two
// versions, the model command (the CLI's own run, as an operator would call
// it) lists them, promotes one, promotes another and rolls back while
// events keep arriving; after each step the scorer, never restarted, scores
// with the new champion: its segment changes caused by events carry the
// new version, and only that or the previous one.
func TestModelCommandWhileTheRolesRun(t *testing.T) {
	start := time.Now()
	brokers := testenv.Kafka(t)
	clicks := testenv.Topic(t, brokers, 2)
	examples := testenv.Topic(t, brokers, 2)
	changesTopic, retargetTopic := testenv.Topic(t, brokers, 1), testenv.Topic(t, brokers, 1)
	erasures := clicks + ".erasures"
	rdb := testenv.RedisDB(t)
	profiles := app.RedisConfig{Addr: rdb.Options().Addr, DB: rdb.Options().DB}
	nodes := testenv.RedisCluster(t)
	_, prefix := testenv.RedisClusterClient(t) // the registry's keys go when the test ends
	prefix = strings.TrimSuffix(prefix, ":")
	regCfg := app.RegistryConfig{Redis: app.RedisConfig{Cluster: nodes}, Prefix: prefix, Topic: "-"}

	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		full := append([]string{"model", "--redis-cluster", strings.Join(nodes, ","), "--prefix", prefix}, args...)
		if code := run(full, &out, &errb); code != 0 {
			t.Fatalf("streamprofile %s: exit %d: %s", strings.Join(full, " "), code, errb.String())
		}
		return out.String()
	}
	// list returns the listed versions' statuses by number, in order.
	list := func() ([]int64, map[int64]string) {
		t.Helper()
		var nums []int64
		status := map[int64]string{}
		for _, line := range strings.Split(strings.TrimSpace(cli("list")), "\n")[1:] {
			f := strings.Fields(line)
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || len(f) < 2 {
				t.Fatalf("list: line %q", line)
			}
			nums = append(nums, n)
			status[n] = f[1]
		}
		return nums, status
	}

	in, err := app.NewIngester(app.IngestConfig{
		Brokers: brokers, Group: "ingest-" + clicks, Partitions: 2, SessionTimeout: 6 * time.Second,
		Redis: profiles, Store: features.StoreConfig{Prefix: "sp"},
		Pipeline:      pipeline.Config{Topic: clicks, FlushInterval: 5 * time.Millisecond, FlushEvents: 200},
		SnapshotTopic: examples,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := stream.EnsureTopics(ctx, brokers, append(in.Topics(), stream.TopicSpec{Name: erasures, Partitions: 1, Compacted: true})...); err != nil {
		in.Close()
		t.Fatal(err)
	}
	arch := inputs.DefaultArch()
	arch.Hidden, arch.HashBuckets = []int{16}, 256
	tr, err := app.NewTrainer(app.TrainerConfig{
		Brokers: brokers, Topic: examples, Group: "train-" + clicks, SessionTimeout: 6 * time.Second,
		Registry: regCfg, Profiles: &profiles, Prefix: "sp", ErasureTopic: erasures,
		Trainer: trainer.Config{Arch: arch, PurchaseHorizon: 5 * time.Minute, RepeatHorizon: 24 * time.Hour, AllowedLateness: time.Minute,
			BatchSize: 32, CheckpointBatches: 5, CheckpointInterval: 300 * time.Millisecond,
			Gate: trainer.GateConfig{Disabled: true}},
	})
	if err != nil {
		in.Close()
		t.Fatal(err)
	}
	sc, err := app.NewScorer(app.ScoreConfig{
		Brokers: brokers, Group: "score-" + clicks, SessionTimeout: 6 * time.Second,
		Redis: profiles, Registry: regCfg, RegistryInterval: 100 * time.Millisecond, DisableErasures: true,
		Scorer: scorer.Config{Topic: examples, ChangesTopic: changesTopic, RetargetTopic: retargetTopic,
			Prefix: "sp", FlushInterval: 5 * time.Millisecond},
	})
	if err != nil {
		tr.Close()
		in.Close()
		t.Fatal(err)
	}
	roles := []*liveRole{
		startLiveRole(t, "ingester", in.Run, in.Close),
		startLiveRole(t, "trainer", tr.Run, tr.Close),
		startLiveRole(t, "scorer", sc.Run, sc.Close),
	}
	changes, triggers := followLive(t, brokers, changesTopic), followLive(t, brokers, retargetTopic)
	recs := liveSample(t)
	feed := startLiveFeed(t, brokers, clicks, recs, len(recs)*2/5)

	// Two versions, both candidates: no champion yet, the scorer scores
	// without a model.
	liveWait(t, 2*time.Minute, "two versions", func() bool {
		meta, err := tr.Registry().Meta(ctx)
		return err == nil && meta.Latest >= 2
	})
	nums, status := list()
	for _, n := range nums {
		if status[n] != string(registry.StatusCandidate) {
			t.Fatalf("version %d is %s before any promotion; the trainer's gate is off", n, status[n])
		}
	}
	if v := sc.Stats().ModelVersion; v != 0 {
		t.Fatalf("the scorer serves version %d before any promotion", v)
	}
	t.Logf("%.1fs: versions %v cut; %d of %d events published", time.Since(start).Seconds(), nums, feed.sent.Load(), len(recs))

	// step runs the CLI with more events allowed to arrive, then waits
	// until the scorer serves want and an event-caused change after the
	// step carries it; every event-caused output after the step carries
	// want or prev (scored just before the swap).
	consumedAtStart := in.Topology().Stats().Consumed.Load()
	step := func(fraction float64, prev, want int64, reply string, args ...string) {
		t.Helper()
		markC, markT := changes.len(), triggers.len()
		feed.raise(fraction)
		if !feed.flowing() {
			t.Fatalf("no events left to arrive during %v", args)
		}
		if out := cli(args...); !strings.Contains(out, reply) {
			t.Fatalf("%v: %q, want %q", args, out, reply)
		}
		began := time.Now()
		liveWait(t, time.Minute, fmt.Sprintf("the scorer to serve version %d after %v", want, args), func() bool {
			if sc.Stats().ModelVersion != want {
				return false
			}
			for _, o := range changes.all()[markC:] {
				if o.Cause == "event" && o.ModelVersion == want {
					return true
				}
			}
			return false
		})
		outs := append(changes.all()[markC:], triggers.all()[markT:]...)
		n := 0
		for _, o := range outs {
			if o.Cause != "event" {
				continue // a timer reports the version its user was last scored with
			}
			n++
			if o.ModelVersion != want && o.ModelVersion != prev {
				t.Fatalf("after %v an event-caused output carries version %d; want %d (or %d, scored before the swap)", args, o.ModelVersion, want, prev)
			}
		}
		t.Logf("%.1fs: %v → the scorer serves version %d after %v (%d event-caused outputs since); %d of %d events published",
			time.Since(start).Seconds(), args, want, time.Since(began).Round(time.Millisecond), n, feed.sent.Load(), len(recs))
	}
	first, second := nums[0], nums[len(nums)-1]
	step(0.6, 0, first, fmt.Sprintf("version %d is champion", first), "promote", strconv.FormatInt(first, 10))
	// The trainer keeps cutting versions meanwhile; promote the newest.
	nums, _ = list()
	second = nums[len(nums)-1]
	step(0.8, first, second, fmt.Sprintf("version %d is champion", second), "promote", strconv.FormatInt(second, 10), "--note", "live test")
	step(1, second, first, fmt.Sprintf("rolled back; version %d is champion", first), "rollback")

	// The registry says so too, and nothing was restarted: every role's
	// Run is the one started at the beginning, and events kept being
	// ingested throughout.
	_, status = list()
	if status[first] != string(registry.StatusChampion) || status[second] != string(registry.StatusRolledBack) {
		t.Errorf("after the rollback: version %d is %s, version %d is %s", first, status[first], second, status[second])
	}
	var v registry.Version
	if err := json.Unmarshal([]byte(cli("show", strconv.FormatInt(second, 10))), &v); err != nil || v.Status != registry.StatusRolledBack {
		t.Errorf("show %d: %+v, %v", second, v, err)
	}
	for _, r := range roles {
		if !r.running() {
			t.Errorf("the %s stopped during the test: %v", r.name, r.err)
		}
	}
	if c := in.Topology().Stats().Consumed.Load(); c <= consumedAtStart {
		t.Errorf("the ingester consumed nothing during the promotions (%d events before, %d after)", consumedAtStart, c)
	}
	t.Logf("%.1fs in all; %d segment changes, %d triggers", time.Since(start).Seconds(), changes.len(), triggers.len())
}
