package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/clv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/schema"
	"github.com/streamprofile/streamprofile/sink/scorer"
	"github.com/streamprofile/streamprofile/stream"
)

// scoreRegistry creates a directory registry whose champion is version 1:
// a freshly initialised network of the default architecture with BG/NBD
// and Gamma-Gamma parameters.
func scoreRegistry(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	reg, closer, err := app.OpenRegistry(app.RegistryConfig{Dir: dir, Topic: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	arch := inputs.DefaultArch()
	net, err := nn.NewNetwork(arch)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	m, err := net.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	gg := clv.GammaGamma{P: 6, Q: 4, V: 15}
	v, err := reg.Create(context.Background(), registry.Version{SchemaHash: inputs.SchemaHash(arch), Arch: arch,
		CLV: &registry.CLVParams{BGNBD: clv.BGNBD{R: 0.25, Alpha: 4, A: 0.8, B: 2.4}, GammaGamma: &gg}}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Promote(context.Background(), v.Number, "test champion"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scoreOutputs reads a one-partition topic from the start, in the background.
type scoreOutputs struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (e *env) followScore(t *testing.T, topic string) *scoreOutputs {
	t.Helper()
	rt := &scoreOutputs{}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: 0, MaxWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			rt.mu.Lock()
			rt.msgs = append(rt.msgs, m)
			rt.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	return rt
}

func (rt *scoreOutputs) all() []kafka.Message {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]kafka.Message(nil), rt.msgs...)
}

func scoreWait(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scoreValidate(t *testing.T, sch *jsonschema.Schema, b []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	if err := sch.Validate(v); err != nil {
		t.Fatalf("%s\ndoes not validate: %v", b, err)
	}
}

const scoreCatalogueA = `version: 1
segments:
  - name: carter
    rule: carts_total >= 1
  - name: new
    rule: tenure_days < 7d
    time_relative: true
`

// The score role on the real pipeline: the ingester's snapshots of the
// REES46 sample are scored with the registry's champion, segment changes
// and triggers come out and every one validates against its schema; an
// edit of the segment file takes effect without a restart; an erasure
// announced on the erasure topic is applied and acknowledged on its
// receipt.
func TestScoreRoleEndToEnd(t *testing.T) {
	e := newEnv(t, 2)
	if err := stream.EnsureTopics(context.Background(), e.brokers, stream.TopicSpec{Name: e.erasureTopic(), Partitions: 1, Compacted: true}); err != nil {
		t.Fatal(err)
	}
	changesTopic, retargetTopic := testenv.Topic(t, e.brokers, 1), testenv.Topic(t, e.brokers, 1)
	segFile := filepath.Join(t.TempDir(), "segments.yaml")
	if err := os.WriteFile(segFile, []byte(scoreCatalogueA), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := e.rdb.Options()
	s, err := app.NewScorer(app.ScoreConfig{
		Brokers: e.brokers, Group: "score-" + e.topic, SessionTimeout: 6 * time.Second,
		Redis:    app.RedisConfig{Addr: opts.Addr, DB: opts.DB},
		Registry: app.RegistryConfig{Dir: scoreRegistry(t)}, RegistryInterval: 100 * time.Millisecond,
		SegmentsFile: segFile, SegmentsInterval: 20 * time.Millisecond, MembersInterval: 100 * time.Millisecond,
		ErasureTopic: e.erasureTopic(),
		Scorer: scorer.Config{Topic: e.topic + ".examples", ChangesTopic: changesTopic, RetargetTopic: retargetTopic,
			Prefix: e.prefix, FlushInterval: 5 * time.Millisecond, Triggers: scorer.TriggerConfig{BrowseIntent: 0.01}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("score role: %v", err)
			}
			s.Close()
		}
	}
	t.Cleanup(stop)
	changes, triggers := e.followScore(t, changesTopic), e.followScore(t, retargetTopic)

	recs := sampleRecords(t)
	half := len(recs) / 2
	e.startIngester(t)
	publish(t, e.brokers, e.topic, recs[:half])
	e.waitCaughtUp(t, 2*time.Minute)
	scoreWait(t, 2*time.Minute, "the first half's changes", func() bool { return len(changes.all()) > 100 })

	// A new segment, picked up without a restart.
	catB := scoreCatalogueA + "  - name: viewer\n    rule: views_total >= 1\n"
	if err := os.WriteFile(segFile, []byte(catB), 0o600); err != nil {
		t.Fatal(err)
	}
	scoreWait(t, 30*time.Second, "the reload", func() bool { _, ok := s.Core().Catalogue().Segment("viewer"); return ok })
	publish(t, e.brokers, e.topic, recs[half:])
	e.waitCaughtUp(t, 2*time.Minute)

	chSchema, err := schema.Compile(schema.SegmentChangesV1)
	if err != nil {
		t.Fatal(err)
	}
	var viewer, withModel int
	var member scorer.SegmentChange
	scoreWait(t, 2*time.Minute, "changes of the new segment", func() bool {
		viewer = 0
		for _, m := range changes.all() {
			var c scorer.SegmentChange
			if err := json.Unmarshal(m.Value, &c); err != nil {
				t.Fatal(err)
			}
			if c.Segment == "viewer" {
				viewer++
			}
			if c.Segment == "carter" && c.Change == "enter" {
				member = c
			}
		}
		return viewer > 100
	})
	for _, m := range changes.all() {
		scoreValidate(t, chSchema, m.Value)
		var c scorer.SegmentChange
		json.Unmarshal(m.Value, &c)
		if c.ModelVersion == 1 {
			withModel++
		}
	}
	trSchema, err := schema.Compile(schema.RetargetV1)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range triggers.all() {
		scoreValidate(t, trSchema, m.Value)
	}
	if withModel == 0 {
		t.Error("no change carries the champion's version")
	}
	t.Logf("%d changes (%d of the reloaded segment), %d triggers", len(changes.all()), viewer, len(triggers.all()))

	// Erasure: as the serve role does it, then announced.
	if member.UserID == "" {
		t.Fatal("no carter to erase")
	}
	user := member.UserID
	store := e.store(t)
	receipt := "er-test-" + e.topic
	if err := e.rdb.HSet(context.Background(), store.ReceiptKey(receipt), "status", "in_progress").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Erase(context.Background(), []string{user}, features.Erasure{At: time.Now().UnixMilli(), Receipt: receipt}); err != nil {
		t.Fatal(err)
	}
	rec, _ := features.ErasureRecord{Receipt: receipt, User: user, RequestedAt: time.Now().UTC()}.Encode()
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: e.brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Send(context.Background(), kafka.Message{Topic: e.erasureTopic(), Key: []byte(user), Value: rec}); err != nil {
		t.Fatal(err)
	}
	scoreWait(t, time.Minute, "the scorer's acknowledgement", func() bool {
		ok, _ := e.rdb.HExists(context.Background(), store.ReceiptKey(receipt), "step:"+scorer.ErasureStep).Result()
		return ok
	})
	for _, name := range []string{"carter", "new", "viewer"} {
		if in, _ := e.rdb.SIsMember(context.Background(), e.prefix+":segidx:{"+name+"}", user).Result(); in {
			t.Errorf("the erased user is still in %s", name)
		}
	}
	scoreWait(t, 10*time.Second, "member counts", func() bool { return s.Stats().Segments["viewer"].Members > 0 })
	stop()
	st := s.Stats()
	if st.Snapshots == 0 || st.ModelVersion != 1 || st.Erased != 1 || st.ChangeLatency.Count == 0 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("snapshots %d, timers %d, triggers %v, suppressed %v, change latency p50 %v p99 %v, handle %v (explain %v)",
		st.Snapshots, st.Timers, st.Triggers, st.SuppressedTotal(), st.ChangeLatency.P50, st.ChangeLatency.P99, st.HandleMean, st.ExplainMean)
}
