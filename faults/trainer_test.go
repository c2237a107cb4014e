//go:build faults

package faults

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/model/trainer"
)

// The ingester turns the sample into profile snapshots; then the trainer
// learns from them in a process that is SIGKILLed at random moments (after
// it has cut a version), again and again, and restarted. The versions'
// audit records must hold every example exactly once, and exactly the
// examples an uninterrupted trainer learns from the same topic.
func TestTrainerSIGKILL(t *testing.T) {
	e := newEnv(t, envOpts{parts: 2})
	r := &row{Case: "trainer SIGKILLed at random moments, repeatedly"}
	record(t, r)
	recs := sampleRecords(t)
	if err := e.send(e.messages(recs)); err != nil {
		t.Fatal(err)
	}
	in := e.ingester("ingester")
	e.waitCaughtUp(2*time.Minute, in)
	in.stop()
	examples := e.topic + ".examples"

	// Time passes: a late view in every partition moves every trainer
	// watermark past every horizon, so that all labels mature.
	var last time.Time
	for _, rec := range recs {
		if rec.Event.TS.After(last) {
			last = rec.Event.TS
		}
	}
	bal := kafka.Murmur2Balancer{}
	parts := make([]int, e.parts)
	for p := range parts {
		parts[p] = p
	}
	for p := range parts {
		for k := 0; ; k++ {
			u := "flush-" + strconv.Itoa(k)
			if bal.Balance(kafka.Message{Key: []byte(u)}, parts...) != p {
				continue
			}
			ts := last.Add(49 * time.Hour)
			s := features.Snapshot{Version: features.SnapshotVersion, ID: u, User: u, TS: ts, Type: "view",
				Features: map[string]float64{"last_seen": float64(ts.Unix())}}
			b, err := s.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if err := e.prod.Send(context.Background(), kafka.Message{Topic: examples, Key: []byte(u), Value: b}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}

	spec := e.spec
	spec.Role, spec.Topic, spec.Group, spec.Prefix = "train", examples, "gt-"+e.topic, "tr"

	// Reference: one uninterrupted trainer over the topic, in offset order.
	ref := map[string]int{}
	{
		b, err := registry.NewDirBackend(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		reg, err := registry.New(registry.Config{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		cfg := trainerConfig(spec).Trainer
		cfg.Topic = examples
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
		for _, m := range e.readTopic(examples) {
			if err := rt.Process(context.Background(), m.Partition, m.Offset, m.Value); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := rt.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		rt.Close()
	}

	b, err := registry.NewRedisBackend(registry.RedisBackendConfig{Client: e.rdb, Prefix: spec.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	latest := func() int64 {
		m, err := reg.Meta(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return m.Latest
	}
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
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("seed %d", seed)
	var procs []*proc
	var recovered []time.Duration
	for kill := 1; kill <= 4; kill++ {
		before := latest()
		p := spawn(t, fmt.Sprintf("trainer-%d", kill), spec)
		procs = append(procs, p)
		started := time.Now()
		for latest() == before {
			if p.exited() || time.Since(started) > 2*time.Minute {
				t.Fatalf("trainer %d cut no version:\n%s", kill, tail(p.log, 20))
			}
			time.Sleep(20 * time.Millisecond)
		}
		recovered = append(recovered, time.Since(started))
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		p.kill()
		t.Logf("kill %d: versions %d → %d", kill, before, latest())
	}
	final := spawn(t, "trainer-final", spec)
	procs = append(procs, final)
	var got map[string]int
	for deadline := time.Now().Add(3 * time.Minute); ; {
		got = learnt()
		if len(got) >= len(ref) || time.Now().After(deadline) || final.exited() {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	final.stop()
	got = learnt()
	twice, missing, extra := 0, 0, 0
	for id, n := range got {
		if n > 1 {
			twice += n - 1
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
	for _, p := range procs {
		r.PeakRSS = max(r.PeakRSS, p.peak.Load())
	}
	r.Lost, r.Dup = int64(missing), int64(twice)
	r.Injected = fmt.Sprintf("%d SIGKILLs, each at a random moment after the incarnation cut a version", len(recovered))
	r.Recovered = stats(recovered)
	r.Notes = fmt.Sprintf("unit: learnt examples (snapshot id × head), not events; reference (uninterrupted trainer) %d, "+
		"killed trainer's versions %d, %d not in the reference; recovery = restart to the next version", len(ref), len(got), extra)
	if twice+missing+extra > 0 || len(ref) < 10000 {
		t.Fatalf("%d examples learnt twice, %d lost, %d not in the reference (reference %d)", twice, missing, extra, len(ref))
	}
}
