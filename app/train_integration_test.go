package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/stream"
)

// trainChildEnv makes TestTrainerChild run a trainer until SIGTERM (or
// SIGKILL) instead of skipping.
const trainChildEnv = "STREAMPROFILE_TEST_CHILD_TRAIN"

type trainSpec struct {
	Brokers []string
	Topic   string
	Group   string
	Redis   string
	DB      int
}

func trainConfig(s trainSpec) app.TrainerConfig {
	arch := inputs.DefaultArch()
	arch.Hidden, arch.HashBuckets = []int{16}, 256
	return app.TrainerConfig{
		Brokers: s.Brokers, Topic: s.Topic, Group: s.Group, SessionTimeout: 6 * time.Second,
		Registry:     app.RegistryConfig{Redis: app.RedisConfig{Addr: s.Redis, DB: s.DB}, Topic: "-"},
		ErasureTopic: s.Topic + ".erasures",
		Trainer: trainer.Config{Arch: arch, PurchaseHorizon: 5 * time.Minute, RepeatHorizon: 24 * time.Hour, AllowedLateness: time.Minute,
			BatchSize: 32, CheckpointBatches: 5, CheckpointInterval: 300 * time.Millisecond, AuditTrained: true,
			Gate: trainer.GateConfig{Examples: 1000, MinExamples: 200}},
	}
}

func TestTrainerChild(t *testing.T) {
	spec := os.Getenv(trainChildEnv)
	if spec == "" {
		t.Skip("runs only as the child process of TestTrainerKilledAndRestartedLearnsEachExampleOnce")
	}
	var s trainSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		t.Fatal(err)
	}
	tr, err := app.NewTrainer(trainConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := tr.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// snapshotsOf replays the sample through feature states as the ingester
// does and returns the snapshot of every applied behavioural event.
func snapshotsOf(t *testing.T) []features.Snapshot {
	t.Helper()
	cfg := features.Config{}.WithDefaults()
	states := map[string]*features.State{}
	var out []features.Snapshot
	var maxTS int64
	for _, r := range sampleRecords(t) {
		ev := r.Event
		if ev.Type == stream.TypeConsent || ev.Type == stream.TypeIdentify {
			continue
		}
		ts := ev.TS.UnixMilli()
		if maxTS > 0 && ts < maxTS-cfg.AllowedLateness.Milliseconds() {
			continue
		}
		maxTS = max(maxTS, ts)
		u := ev.ProfileKey()
		st := states[u]
		if st == nil {
			st = &features.State{}
			states[u] = st
		}
		if st.Apply(&ev, features.Env{Cfg: &cfg, Watermark: maxTS - cfg.AllowedLateness.Milliseconds()}) == features.Applied {
			out = append(out, features.NewSnapshot(&ev, u, st, &cfg, features.SnapshotSource{}))
		}
	}
	return out
}

// The trainer is SIGKILLed at random moments while it learns from real
// Kafka into a Redis registry, and restarted; in the end the versions'
// audit records hold every example exactly once, and exactly the examples
// an uninterrupted trainer learns.
func TestTrainerKilledAndRestartedLearnsEachExampleOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	const parts = 2
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, parts)
	rdb := testenv.RedisDB(t)
	spec := trainSpec{Brokers: brokers, Topic: topic, Group: "g-" + topic, Redis: rdb.Options().Addr, DB: rdb.Options().DB}

	snaps := snapshotsOf(t)
	// Time passes: a late view in every partition moves every watermark
	// past every horizon, so that all labels mature.
	bal := kafka.Murmur2Balancer{}
	last := snaps[len(snaps)-1].TS
	for p := 0; p < parts; p++ {
		for k := 0; ; k++ {
			u := fmt.Sprintf("flush-%d", k)
			if bal.Balance(kafka.Message{Key: []byte(u)}, 0, 1) == p {
				ts := last.Add(49 * time.Hour)
				snaps = append(snaps, features.Snapshot{Version: 1, ID: u, User: u, TS: ts, Type: "view",
					Features: map[string]float64{"last_seen": float64(ts.Unix())}})
				break
			}
		}
	}
	// Reference: one uninterrupted trainer over the same partitions.
	ref := map[string]int{}
	{
		b, _ := registry.NewDirBackend(t.TempDir())
		reg, _ := registry.New(registry.Config{Backend: b})
		cfg := trainConfig(spec).Trainer
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.OnTrain = func(b []trainer.Trained) {
			for _, x := range b {
				ref[x.ID+"/"+x.Task]++
			}
		}
		rt, err := trainer.New(cfg, reg)
		if err != nil {
			t.Fatal(err)
		}
		next := map[int]int64{}
		for i := range snaps {
			p := bal.Balance(kafka.Message{Key: []byte(snaps[i].User)}, 0, 1)
			if err := rt.ProcessSnapshot(context.Background(), p, next[p], &snaps[i]); err != nil {
				t.Fatal(err)
			}
			next[p]++
		}
		if _, err := rt.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		rt.Close()
	}

	msgs := make([]kafka.Message, len(snaps))
	for i := range snaps {
		b, _ := snaps[i].Encode()
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(snaps[i].User), Value: b}
	}
	prod, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	pubDone := make(chan error, 1)
	go func() {
		for i := 0; i < len(msgs); i += 1000 {
			if err := prod.Send(context.Background(), msgs[i:min(i+1000, len(msgs))]...); err != nil {
				pubDone <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		pubDone <- nil
	}()

	b, _ := registry.NewRedisBackend(registry.RedisBackendConfig{Client: rdb})
	reg, _ := registry.New(registry.Config{Backend: b})
	latest := func() int64 {
		m, err := reg.Meta(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return m.Latest
	}
	specJSON, _ := json.Marshal(spec)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTrainerChild$")
		cmd.Env = append(os.Environ(), trainChildEnv+"="+string(specJSON))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for kill := 1; kill <= 3; kill++ {
		before := latest()
		cmd := start()
		deadline := time.Now().Add(time.Minute)
		for latest() == before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(r.IntN(400)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		t.Logf("kill %d: versions %d → %d", kill, before, latest())
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	// The last incarnation runs until every reference example is learnt,
	// then stops cleanly.
	cmd := start()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	learnt := func() map[string]int {
		vs, err := reg.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, v := range vs {
			raw, err := reg.State(context.Background(), v.Number)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := trainer.LearntIDs(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				got[id]++
			}
		}
		return got
	}
	deadline := time.Now().Add(2 * time.Minute)
	var got map[string]int
	for {
		got = learnt()
		if len(got) >= len(ref) || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	got = learnt()
	twice, missing, extra := 0, 0, 0
	for id, n := range got {
		if n > 1 {
			twice++
		}
		if ref[id] == 0 {
			extra++
		}
	}
	for id := range ref {
		if got[id] == 0 {
			missing++
		}
	}
	t.Logf("reference learnt %d examples; the killed trainer's versions %d (%d versions)", len(ref), len(got), latest())
	if twice+missing+extra > 0 || len(ref) < 10000 {
		t.Fatalf("%d examples learnt twice, %d lost, %d not in the reference (reference %d)", twice, missing, extra, len(ref))
	}
	// The last version's network scores a snapshot; bytes round-trip.
	v, err := reg.Get(context.Background(), latest())
	if err != nil {
		t.Fatal(err)
	}
	m, err := reg.Model(context.Background(), v.Number)
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.NewServed(v, m)
	if err != nil {
		t.Fatal(err)
	}
	if sc, err := s.Score(&snaps[0]); err != nil || sc.Version != v.Number || len(sc.Probs) != len(m.Arch().Heads) {
		t.Fatalf("score %+v, %v", sc, err)
	}
}
