package scorer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// childSpec is the scorer a child process runs.
type childSpec struct {
	Brokers                         []string
	Topic, Changes, Retarget, Group string
	Redis                           string
	DB                              int
	Prefix                          string
	ModelFile, VersionFile          string
}

// crashConfig is the configuration of the crash test's scorers: event
// time only (no idle advance), the catalogue without deciles.
func crashConfig(s childSpec, champion *registry.Champion) (Config, error) {
	cat, err := segment.Parse("nodeciles.yaml", []byte(noDecileCatalogue), segment.Config{})
	if err != nil {
		return Config{}, err
	}
	return Config{Topic: s.Topic, ChangesTopic: s.Changes, RetargetTopic: s.Retarget, Group: s.Group, Prefix: s.Prefix,
		Champion: champion, Catalogue: func() *segment.Catalogue { return cat }, Triggers: triggerConfig(),
		IdleAfter: 1000 * time.Hour, Tick: 20 * time.Millisecond, FlushInterval: 5 * time.Millisecond, FlushEvents: 200,
		MaxBatch: 100, Items: ItemsConfig{SaveInterval: 50 * time.Millisecond}}, nil
}

func loadChampion(s childSpec) (*registry.Champion, error) {
	f, err := os.Open(s.ModelFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := nn.Load(f)
	if err != nil {
		return nil, err
	}
	vb, err := os.ReadFile(s.VersionFile)
	if err != nil {
		return nil, err
	}
	v, err := registry.DecodeVersion(vb)
	if err != nil {
		return nil, err
	}
	served, err := registry.NewServed(v, m)
	if err != nil {
		return nil, err
	}
	c := &registry.Champion{}
	c.Store(served)
	return c, nil
}

// runScorer runs a scorer for s until ctx is done.
func runScorer(ctx context.Context, s childSpec) error {
	champion, err := loadChampion(s)
	if err != nil {
		return err
	}
	cfg, err := crashConfig(s, champion)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Redis, DB: s.DB})
	defer rdb.Close()
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: s.Brokers})
	if err != nil {
		return err
	}
	defer p.Close()
	sc, err := New(cfg, rdb, p)
	if err != nil {
		return err
	}
	g, err := stream.NewGroup(stream.GroupConfig{Brokers: s.Brokers, GroupID: s.Group, Topic: s.Topic, SessionTimeout: 6 * time.Second}, sc.Factory())
	if err != nil {
		return err
	}
	return g.Run(ctx)
}

func runChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	// Runs until killed; a SIGKILL gives it no chance to clean up.
	if err := runScorer(context.Background(), s); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// crashInput is the REES46 sample's snapshots, then consent snapshots
// (profiling withdrawn by a few of its users, ads by a few others), then
// in every partition a user seen 200 days later: every timer of the sample
// comes due (cart, browse, win-back, silent, retention).
func crashInput(t *testing.T) []features.Snapshot {
	snaps := slices.Clone(heavySnaps(t))
	last := snaps[len(snaps)-1].TS
	st := newStory()
	var users []string
	for _, sn := range snaps {
		if !slices.Contains(users, sn.User) {
			users = append(users, sn.User)
		}
		if len(users) == 40 {
			break
		}
	}
	for i, u := range users {
		if i%2 == 0 {
			st.profilingOff(u, last.Add(time.Minute))
		} else {
			st.adsOff(u, last.Add(time.Minute))
		}
	}
	for p := 0; len(st.snaps) < len(users)+40; p++ {
		st.add(fmt.Sprintf("late-%d", p), stream.TypeSearch, "", 0, last.Add(200*24*time.Hour))
	}
	return append(snaps, st.snaps...)
}

// readAll reads a single-partition topic from the start until it has been
// quiet for quiet after holding at least min messages.
func readAll(t *testing.T, brokers []string, topic string, min int, quiet, timeout time.Duration) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	deadline := time.Now().Add(timeout)
	lastNew := time.Now()
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err == nil {
			out = append(out, m)
			lastNew = time.Now()
			continue
		}
		if len(out) >= min && time.Since(lastNew) > quiet {
			return out
		}
	}
	t.Fatalf("%s: %d messages after %v, want at least %d then quiet", topic, len(out), timeout, min)
	return nil
}

// The scorer is SIGKILLed at random moments while it scores real
// snapshots, and restarted; in the end it has emitted exactly the changes
// and triggers (by id) of an uninterrupted scorer, and every repeated
// message was first written in the moments before a kill (the replay
// window: acknowledged by Kafka, not yet flushed to Redis). The
// uninterrupted scorer emits nothing twice.
func TestScorerKilledAndRestartedEmitsEachOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	const parts = 2
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, parts)
	input := crashInput(t)
	served := trainedServed(t)
	dir := t.TempDir()
	spec := childSpec{Brokers: brokers, Topic: topic, Prefix: "sp",
		ModelFile: filepath.Join(dir, "model.bin"), VersionFile: filepath.Join(dir, "version.json")}
	mb, err := served.Model.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	vb, err := served.Version.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec.ModelFile, mb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec.VersionFile, vb, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := make([]kafka.Message, len(input))
	for i := range input {
		b, _ := input[i].Encode()
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(input[i].User), Value: b}
	}

	// The reference: one scorer, never interrupted.
	ref := spec
	ref.Changes, ref.Retarget, ref.Group = testenv.Topic(t, brokers, 1), testenv.Topic(t, brokers, 1), "ref-"+topic
	refDB := testenv.RedisDB(t)
	ref.Redis, ref.DB = refDB.Options().Addr, refDB.Options().DB
	if err := p.Send(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runScorer(ctx, ref) }()
	refChanges := readAll(t, brokers, ref.Changes, 100, 3*time.Second, 3*time.Minute)
	refTriggers := readAll(t, brokers, ref.Retarget, 10, time.Second, time.Minute)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := sortedIDs(t, refChanges, refTriggers)
	for i := 1; i < len(want); i++ {
		if want[i] == want[i-1] {
			t.Fatalf("uninterrupted scorer emitted %s twice", want[i])
		}
	}
	t.Logf("reference: %d changes, %d triggers", len(refChanges), len(refTriggers))

	// The crashing scorer.
	crash := spec
	crash.Changes, crash.Retarget, crash.Group = testenv.Topic(t, brokers, 1), testenv.Topic(t, brokers, 1), "crash-"+topic
	db := testenv.RedisDB(t)
	crash.Redis, crash.DB = db.Options().Addr, db.Options().DB
	raw, _ := json.Marshal(crash)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	st, err := newStore(db, &Config{Prefix: "sp", Group: crash.Group, Topic: topic, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	progress := func() int64 {
		var n int64
		for q := 0; q < parts; q++ {
			cp, err := st.loadCheckpoint(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			n += max(cp.Next, 0)
		}
		return n
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var kills []time.Time
	for kill := 1; kill <= 4; kill++ {
		before := progress()
		cmd := start()
		deadline := time.Now().Add(2 * time.Minute)
		for progress() == before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(r.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		kills = append(kills, time.Now())
		t.Logf("kill %d: checkpoints covered %d then %d snapshots", kill, before, progress())
	}
	cmd := start()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	gotChanges := readAll(t, brokers, crash.Changes, len(refChanges), 3*time.Second, 5*time.Minute)
	gotTriggers := readAll(t, brokers, crash.Retarget, len(refTriggers), time.Second, time.Minute)
	got := sortedIDs(t, gotChanges, gotTriggers)
	distinct := slices.Compact(slices.Clone(got))
	if !slices.Equal(distinct, want) {
		missing, extra := diff(want, distinct)
		t.Fatalf("after crashes: %d distinct ids, uninterrupted: %d; missing %d (%v…), extra %d (%v…)",
			len(distinct), len(want), len(missing), head(missing), len(extra), head(extra))
	}
	// Every repeat was first written shortly before a kill.
	first := map[string]time.Time{}
	repeats := 0
	check := func(id string, at time.Time) {
		f, seen := first[id]
		if !seen {
			first[id] = at
			return
		}
		repeats++
		for _, k := range kills {
			if !f.After(k) && k.Sub(f) < 5*time.Second {
				return
			}
		}
		t.Errorf("%s repeated; its first copy (%v) was not written in the moments before a kill (%v)", id, f, kills)
	}
	for i, c := range decodeChanges(t, gotChanges) {
		check(c.EventID, gotChanges[i].Time)
	}
	for i, tr := range decodeTriggers(t, gotTriggers) {
		check(tr.TriggerID, gotTriggers[i].Time)
	}
	t.Logf("%d kills: %d changes and %d triggers, %d repeated in replay windows", len(kills), len(gotChanges), len(gotTriggers), repeats)

	// The indexes agree with the stored memberships.
	assertIndexesConsistent(t, db, "sp")
}

// assertIndexesConsistent checks that every segment index holds exactly
// the users whose stored membership has the segment.
func assertIndexesConsistent(t *testing.T, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	fromSeg := map[string]map[string]bool{}
	iter := rdb.Scan(ctx, 0, prefix+":{*}:seg", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		user := key[strings.Index(key, "{")+1 : strings.LastIndex(key, "}")]
		raw, err := rdb.Get(ctx, key).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		var m segment.Membership
		if err := m.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		for _, s := range m.Segments() {
			if fromSeg[s] == nil {
				fromSeg[s] = map[string]bool{}
			}
			fromSeg[s][user] = true
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	idx := rdb.Scan(ctx, 0, prefix+":segidx:{*}", 1000).Iterator()
	seen := map[string]bool{}
	for idx.Next(ctx) {
		key := idx.Val()
		seg := key[strings.Index(key, "{")+1 : strings.LastIndex(key, "}")]
		seen[seg] = true
		members, err := rdb.SMembers(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range members {
			if !fromSeg[seg][u] {
				t.Errorf("index %s holds %s, whose membership does not have it", seg, u)
			}
		}
		if len(members) != len(fromSeg[seg]) {
			t.Errorf("index %s: %d members, memberships: %d", seg, len(members), len(fromSeg[seg]))
		}
	}
	for seg, us := range fromSeg {
		if !seen[seg] && len(us) > 0 {
			t.Errorf("segment %s: %d members, no index", seg, len(us))
		}
	}
}

func diff(want, got []string) (missing, extra []string) {
	w, g := map[string]bool{}, map[string]bool{}
	for _, x := range want {
		w[x] = true
	}
	for _, x := range got {
		g[x] = true
		if !w[x] {
			extra = append(extra, x)
		}
	}
	for _, x := range want {
		if !g[x] {
			missing = append(missing, x)
		}
	}
	return missing, extra
}

func head(s []string) []string { return s[:min(3, len(s))] }
