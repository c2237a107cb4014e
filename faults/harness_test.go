package faults

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/features/featurestest"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/sink/scorer"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

const (
	// childEnv makes the test binary run a role (its JSON childSpec)
	// instead of the tests: the cases start ingesters and trainers as
	// processes of their own, to SIGKILL them and to measure their memory.
	childEnv = "STREAMPROFILE_FAULTS_CHILD"
	// resultsEnv names the Markdown file TestMain writes the results to.
	resultsEnv = "STREAMPROFILE_FAULTS_RESULTS"
	// Headers of injected bad records: the reason the DLQ must give, and
	// an id unique to the record.
	hdrExpect = "fault-expect"
	hdrID     = "fault-id"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	report.loadStart = loadAverage()
	code := m.Run()
	if path := os.Getenv(resultsEnv); path != "" {
		if err := report.write(path); err != nil {
			fmt.Fprintln(os.Stderr, "faults: writing results:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// ---------------------------------------------------------------- children

// childSpec is the configuration handed to a child process.
type childSpec struct {
	Role         string // "ingest", "train" or "score"
	Brokers      []string
	Topic        string // ingest: the clickstream topic; train and score: the examples topic
	Group        string
	Redis        string
	DB           int
	Cluster      []string
	Prefix       string
	TTL          time.Duration
	RedisTimeout time.Duration
	StatsFile    string
	// Score role: the output and erasure topics, and the model registry's
	// directory.
	Changes, Retarget, Erasures string
	RegistryDir                 string
	Segments                    string // the segment catalogue file
}

// childStats is what an ingester child reports in its stats file.
type childStats struct {
	Consumed, Valid, Applied, Duplicates, Replayed, DeadLetter, Emitted, Flushes int64
	// Assigned is the number of partitions the child processes now.
	Assigned int
	DLQ      map[stream.Reason]int64
}

func runChild(raw string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	switch s.Role {
	case "ingest":
		err = runIngester(ctx, s, log)
	case "train":
		err = runTrainer(ctx, s, log)
	case "score":
		err = runScorer(ctx, s, log)
	default:
		err = fmt.Errorf("unknown role %q", s.Role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// runIngester runs the ingest role with the production defaults of the
// pipeline until SIGTERM (or SIGKILL), writing its counters to the stats
// file every 100 ms.
func runIngester(ctx context.Context, s childSpec, log *slog.Logger) error {
	in, err := app.NewIngester(app.IngestConfig{
		Brokers: s.Brokers, Group: s.Group, SessionTimeout: 6 * time.Second,
		Redis:         app.RedisConfig{Addr: s.Redis, DB: s.DB, Cluster: s.Cluster, Timeout: s.RedisTimeout},
		Store:         features.StoreConfig{Prefix: s.Prefix, TTL: s.TTL},
		Pipeline:      pipeline.Config{Topic: s.Topic},
		SnapshotTopic: s.Topic + ".examples",
		Logger:        log,
	})
	if err != nil {
		return err
	}
	defer in.Close()
	write := func() {
		st := in.Topology().Stats()
		cs := childStats{Consumed: st.Consumed.Load(), Valid: st.Valid.Load(), Applied: st.Applied.Load(),
			Duplicates: st.Duplicates.Load(), Replayed: st.Replayed.Load(), DeadLetter: st.DeadLetter.Load(),
			Emitted: st.Emitted.Load(), Flushes: st.Flushes.Load(), Assigned: len(in.Group().Assigned()),
			DLQ: st.DeadLetterByReason()}
		b, _ := json.Marshal(cs)
		tmp := s.StatsFile + ".tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			_ = os.Rename(tmp, s.StatsFile)
		}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				write()
			}
		}
	}()
	err = in.Run(ctx)
	close(done)
	write()
	return err
}

// trainerConfig is the train role of the fault cases: a small network, short
// horizons and frequent checkpoints, every learnt example audited in the
// versions it cuts (registry in the case's Redis database). Its erasure
// topic is the case's own: the shared default would replay other tests'
// erasures into it, and whether an erased user's pending example is
// dropped or already learnt depends on timing, which the comparison with
// an uninterrupted trainer cannot allow.
func trainerConfig(s childSpec) app.TrainerConfig {
	erasures := s.Erasures
	if erasures == "" {
		erasures = s.Topic + ".erasures"
	}
	arch := inputs.DefaultArch()
	arch.Hidden, arch.HashBuckets = []int{16}, 256
	return app.TrainerConfig{
		Brokers: s.Brokers, Topic: s.Topic, Group: s.Group, SessionTimeout: 6 * time.Second,
		Registry:     app.RegistryConfig{Redis: app.RedisConfig{Addr: s.Redis, DB: s.DB}, Prefix: s.Prefix, Topic: "-"},
		ErasureTopic: erasures,
		Trainer: trainer.Config{Arch: arch, PurchaseHorizon: 5 * time.Minute, RepeatHorizon: 24 * time.Hour,
			AllowedLateness: time.Minute, BatchSize: 32, CheckpointBatches: 5, CheckpointInterval: 300 * time.Millisecond,
			AuditTrained: true, Gate: trainer.GateConfig{Examples: 1000, MinExamples: 200}},
	}
}

// runTrainer runs the train role until SIGTERM (or SIGKILL).
func runTrainer(ctx context.Context, s childSpec, log *slog.Logger) error {
	cfg := trainerConfig(s)
	cfg.Logger = log
	tr, err := app.NewTrainer(cfg)
	if err != nil {
		return err
	}
	defer tr.Close()
	return tr.Run(ctx)
}

// scorerConfig is the score role of the fault cases: production defaults,
// the champion read from a registry directory and the catalogue from a
// file (see TestScorerSIGKILL), except that an idle
// partition's clock never follows wall time (IdleAfter 1000 h), so that
// the changes and triggers depend on the snapshots alone and a run that is
// killed and restarted can be compared with one that is not.
func scorerConfig(s childSpec) app.ScoreConfig {
	return app.ScoreConfig{
		Brokers: s.Brokers, Group: s.Group, SessionTimeout: 6 * time.Second,
		Redis:        app.RedisConfig{Addr: s.Redis, DB: s.DB, Timeout: s.RedisTimeout},
		Registry:     app.RegistryConfig{Dir: s.RegistryDir},
		ErasureTopic: s.Erasures,
		SegmentsFile: s.Segments,
		Scorer: scorer.Config{Topic: s.Topic, ChangesTopic: s.Changes, RetargetTopic: s.Retarget, Prefix: s.Prefix,
			IdleAfter: 1000 * time.Hour},
	}
}

// runScorer runs the score role until SIGTERM (or SIGKILL).
func runScorer(ctx context.Context, s childSpec, log *slog.Logger) error {
	cfg := scorerConfig(s)
	cfg.Logger = log
	sc, err := app.NewScorer(cfg)
	if err != nil {
		return err
	}
	defer sc.Close()
	return sc.Run(ctx)
}

// proc is a running child process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   string
	stats string
	peak  atomic.Int64 // bytes: the largest VmHWM seen
	done  chan struct{}
}

// spawn starts a child running spec.
func spawn(t *testing.T, name string, spec childSpec) *proc {
	t.Helper()
	dir := t.TempDir()
	spec.StatsFile = filepath.Join(dir, "stats.json")
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, log: filepath.Join(dir, "stderr.log"), stats: spec.StatsFile, done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, hwm := procMem(p.cmd.Process.Pid); hwm > p.peak.Load() {
				p.peak.Store(hwm)
			}
			select {
			case <-p.done:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("last lines of %s's log:\n%s", p.name, tail(p.log, 15))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM (the child flushes and leaves the group) and waits;
// after 30 s it kills.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// rss returns the current resident memory in bytes (0 once exited).
func (p *proc) rss() int64 {
	if p.exited() {
		return 0
	}
	r, _ := procMem(p.cmd.Process.Pid)
	return r
}

// readStats returns the child's last reported counters (written every
// 100 ms, and once more as it exits after SIGTERM).
func (p *proc) readStats() childStats {
	var s childStats
	if b, err := os.ReadFile(p.stats); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

// procMem reads VmRSS and VmHWM (peak resident) of pid, in bytes.
func procMem(pid int) (rss, hwm int64) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		}
	}
	return rss, hwm
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ---------------------------------------------------------------- environment

// envOpts selects what a case needs.
type envOpts struct {
	parts          int
	exclusiveKafka bool // the case stops the broker
	exclusiveRedis bool // the case restarts or pauses redis-server
	ttl            time.Duration
	redisTimeout   time.Duration
}

// env is one case's topics, Redis database and store.
type env struct {
	t       *testing.T
	brokers []string
	topic   string
	parts   int
	group   string
	rdb     *redis.Client
	store   *features.Store
	spec    childSpec // the children's configuration
	prod    *stream.Producer
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	if o.parts == 0 {
		o.parts = 4
	}
	var brokers []string
	if o.exclusiveKafka {
		brokers = testenv.ExclusiveKafka(t)
	} else {
		brokers = testenv.Kafka(t)
	}
	if o.exclusiveRedis {
		testenv.ExclusiveRedis(t)
	}
	rdb := testenv.RedisDB(t)
	topic := testenv.Topic(t, brokers, o.parts)
	side := []string{topic + ".dlq", topic + ".examples"}
	if err := stream.EnsureTopics(context.Background(), brokers,
		stream.TopicSpec{Name: side[0], Partitions: o.parts}, stream.TopicSpec{Name: side[1], Partitions: o.parts}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := &kafka.Client{Addr: kafka.TCP(brokers...)}
		if _, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: side}); err != nil {
			t.Logf("deleting %v: %v", side, err)
		}
	})
	group := "g-" + topic
	store, err := features.NewStore(rdb, features.StoreConfig{Prefix: "sp", Group: group, TTL: o.ttl})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	opts := rdb.Options()
	return &env{t: t, brokers: brokers, topic: topic, parts: o.parts, group: group, rdb: rdb, store: store, prod: prod,
		spec: childSpec{Role: "ingest", Brokers: brokers, Topic: topic, Group: group, Redis: opts.Addr, DB: opts.DB,
			Prefix: "sp", TTL: o.ttl, RedisTimeout: o.redisTimeout}}
}

// ingester starts an ingester process.
func (e *env) ingester(name string) *proc { return spawn(e.t, name, e.spec) }

// progress is the number of records the partitions' checkpoints cover.
func (e *env) progress() int64 {
	var n int64
	for p := 0; p < e.parts; p++ {
		cp, err := e.store.LoadCheckpoint(context.Background(), e.topic, p)
		if err != nil {
			return -1 // Redis unreachable during a fault
		}
		n += max(cp.Next, 0)
	}
	return n
}

// lag is the number of published records the checkpoints do not cover
// (-1 while Kafka or Redis does not answer).
func (e *env) lag() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := app.Lag(ctx, e.brokers, e.topic, e.store)
	if err != nil {
		return -1
	}
	var n int64
	for _, v := range l {
		n += v
	}
	return n
}

// waitCaughtUp waits until every published record is covered by the
// checkpoints and returns how long that took.
func (e *env) waitCaughtUp(timeout time.Duration, procs ...*proc) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		if e.lag() == 0 {
			return time.Since(start)
		}
		for _, p := range procs {
			if p.exited() {
				e.t.Fatalf("%s exited while catching up:\n%s", p.name, tail(p.log, 20))
			}
		}
		if time.Since(start) > timeout {
			e.t.Fatalf("not caught up after %s: lag %d", timeout, e.lag())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitProgress waits until the checkpoints cover more than from records
// and returns how long that took.
func (e *env) waitProgress(from int64, timeout time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	for e.progress() <= from {
		if time.Since(start) > timeout {
			e.t.Fatalf("no progress beyond %d records within %s", from, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// messages turns records into clickstream messages keyed by profile.
func (e *env) messages(recs []source.Record) []kafka.Message {
	out := make([]kafka.Message, len(recs))
	for i, r := range recs {
		out[i] = kafka.Message{Topic: e.topic, Key: []byte(r.Event.ProfileKey()), Value: r.Value}
	}
	return out
}

// send publishes msgs in chunks, as fast as the broker takes them.
func (e *env) send(msgs []kafka.Message) error {
	for i := 0; i < len(msgs); i += 2000 {
		if err := e.prod.Send(context.Background(), msgs[i:min(i+2000, len(msgs))]...); err != nil {
			return err
		}
	}
	return nil
}

// sendPaced publishes msgs at rate per second (in 50 ms steps) until done
// or ctx ends; sent counts the messages acknowledged.
func (e *env) sendPaced(ctx context.Context, msgs []kafka.Message, rate float64, sent *atomic.Int64) error {
	step := max(1, int(rate/20))
	start := time.Now()
	for i := 0; i < len(msgs); i += step {
		if err := e.prod.Send(ctx, msgs[i:min(i+step, len(msgs))]...); err != nil {
			return err
		}
		if sent != nil {
			sent.Add(int64(min(i+step, len(msgs)) - i))
		}
		next := start.Add(time.Duration(float64(i+step) / rate * float64(time.Second)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(next)):
		}
	}
	return nil
}

// ---------------------------------------------------------------- data

// sample returns the bundled REES46 sample, read once.
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

// rekeyed returns recs with, after each record, copies-1 copies whose user,
// session and event ids carry the suffix "~k": copies× the users and events,
// in the sample's event-time order.
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
			out = append(out, recode(t, dec, &ev, r.Line))
		}
	}
	return out
}

// recode encodes ev and decodes it back, so the record holds exactly what a
// consumer sees.
func recode(t *testing.T, dec *stream.Decoder, ev *stream.Event, line int) source.Record {
	t.Helper()
	rec, err := encodeEvent(dec, ev, line)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// encodeEvent is recode for goroutines other than the test's.
func encodeEvent(dec *stream.Decoder, ev *stream.Event, line int) (source.Record, error) {
	v, err := stream.Encode(ev)
	if err != nil {
		return source.Record{}, err
	}
	got, err := dec.Decode(v)
	if err != nil {
		return source.Record{}, fmt.Errorf("%w: %s", err, v)
	}
	return source.Record{Event: got, Value: v, Line: line}, nil
}

func eventsOf(recs []source.Record) []stream.Event {
	evs := make([]stream.Event, len(recs))
	for i, r := range recs {
		evs[i] = r.Event
	}
	return evs
}

// ---------------------------------------------------------------- checks

// counted are the features that count events, one per event type.
var counted = []features.ID{features.ViewsTotal, features.CartsTotal, features.RemovesTotal, features.PurchasesTotal,
	features.SearchesTotal, features.ReviewsTotal}

// verdict is the comparison of the stored profiles with the batch
// recomputation.
type verdict struct {
	Users, Events int64 // users and counted events in the recomputation
	Found         int64 // users compared whose profile is stored
	Lost, Dup     int64 // counted events missing from, or in excess in, the stored profiles
	Differ        []string
}

// compareProfiles compares the stored profiles of users (all stored users
// when nil) with the batch recomputation over evs at the largest event time.
// missingOK lists users that may have expired.
func (e *env) compareProfiles(evs []stream.Event, users []string, missingOK func(string) bool) verdict {
	e.t.Helper()
	var at time.Time
	for _, ev := range evs {
		if ev.TS.After(at) {
			at = ev.TS
		}
	}
	cfg := features.Config{}.WithDefaults()
	want := featurestest.Recompute(evs, at, cfg)
	var v verdict
	for _, w := range want {
		v.Users++
		for _, id := range counted {
			v.Events += int64(w.Vector[id])
		}
	}
	stored := map[string]bool{}
	if err := app.ScanUsers(context.Background(), e.store, func(u string) error { stored[u] = true; return nil }); err != nil {
		e.t.Fatal(err)
	}
	subset := users != nil
	if !subset {
		for u := range want {
			users = append(users, u)
		}
	}
	sort.Strings(users)
	for _, u := range users {
		delete(stored, u)
		w, ok := want[u]
		if !ok {
			e.t.Fatalf("user %s: no events in the reference", u)
		}
		st, found, err := e.store.LoadOne(context.Background(), u)
		if err != nil {
			e.t.Fatal(err)
		}
		if !found {
			if missingOK != nil && missingOK(u) {
				continue
			}
			for _, id := range counted {
				v.Lost += int64(w.Vector[id])
			}
			v.Differ = append(v.Differ, u+": missing")
			continue
		}
		v.Found++
		got := st.Evaluate(at, &cfg)
		for _, id := range counted {
			d := int64(got.Vector[id] - w.Vector[id])
			v.Lost += max(0, -d)
			v.Dup += max(0, d)
		}
		if d := featurestest.Diff(got, w, 1e-9); len(d) > 0 {
			v.Differ = append(v.Differ, fmt.Sprintf("%s: %v", u, d))
		}
	}
	for u := range stored {
		if subset {
			break // only the listed users are compared
		}
		st, found, _ := e.store.LoadOne(context.Background(), u)
		if found {
			got := st.Evaluate(at, &cfg)
			for _, id := range counted {
				v.Dup += int64(got.Vector[id])
			}
			v.Differ = append(v.Differ, u+": stored but not in the data")
		}
	}
	return v
}

// requireExact fails the test unless the verdict shows no difference.
func requireExact(t *testing.T, v verdict) {
	t.Helper()
	if v.Lost != 0 || v.Dup != 0 || len(v.Differ) != 0 {
		t.Errorf("%d events lost, %d applied twice, %d users differ from the batch recomputation; first: %v",
			v.Lost, v.Dup, len(v.Differ), v.Differ[:min(3, len(v.Differ))])
	}
}

// readTopic returns every record of topic, partition by partition.
func (e *env) readTopic(topic string) []kafka.Message {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...)}
	var reqs []kafka.OffsetRequest
	for p := 0; p < e.parts; p++ {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []kafka.Message
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			e.t.Fatalf("%s/%d: %v", topic, po.Partition, po.Error)
		}
		if po.LastOffset <= po.FirstOffset {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: po.Partition,
			MaxWait: 100 * time.Millisecond, MaxBytes: 8 << 20})
		if err := r.SetOffset(po.FirstOffset); err != nil {
			e.t.Fatal(err)
		}
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				e.t.Fatalf("reading %s/%d: %v", topic, po.Partition, err)
			}
			out = append(out, m)
			if m.Offset >= po.LastOffset-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

func header(m kafka.Message, key string) string {
	v, _ := stream.HeaderValue(m.Headers, key)
	return v
}

// dlqCheck is the comparison of the DLQ with the injected bad records.
type dlqCheck struct {
	Records, Distinct, Repeats int64
	ByReason                   map[string]int64
}

// checkDLQ requires every injected bad record (want: fault-id → reason) in
// the DLQ with its reason, and nothing else.
func (e *env) checkDLQ(want map[string]stream.Reason) dlqCheck {
	e.t.Helper()
	got := map[string]bool{}
	c := dlqCheck{ByReason: map[string]int64{}}
	for _, m := range e.readTopic(e.topic + ".dlq") {
		c.Records++
		id, reason := header(m, hdrID), header(m, stream.HeaderReason)
		exp, ok := want[id]
		if !ok {
			e.t.Errorf("DLQ holds a record that was not injected bad: reason %q, error %q, key %q", reason,
				header(m, stream.HeaderError), m.Key)
			continue
		}
		if reason != string(exp) || header(m, hdrExpect) != string(exp) {
			e.t.Errorf("DLQ record %s: reason %q, injected as %q (%s)", id, reason, exp, header(m, stream.HeaderError))
		}
		if got[id] {
			c.Repeats++
			continue
		}
		got[id] = true
		c.Distinct++
		c.ByReason[reason]++
	}
	if int(c.Distinct) != len(want) {
		e.t.Errorf("DLQ holds %d of the %d injected bad records", c.Distinct, len(want))
	}
	return c
}

// examplesCheck is the comparison of the profile-examples topic with the
// applied events.
type examplesCheck struct {
	Records, Distinct, Repeats, Differing int64
}

// checkExamples requires one snapshot per event of evs (ids) other than
// an identify (consent events have one too), each repeat byte-identical to
// its first copy, and no other snapshot. (The data has no profiling
// withdrawal, which would suppress the user's later events' snapshots.)
func (e *env) checkExamples(evs []stream.Event) examplesCheck {
	e.t.Helper()
	want := make(map[string]bool, len(evs))
	for _, ev := range evs {
		if ev.Type != stream.TypeIdentify {
			want[ev.EventID] = true
		}
	}
	first := map[string][sha256.Size]byte{}
	var c examplesCheck
	for _, m := range e.readTopic(e.topic + ".examples") {
		c.Records++
		var s struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(m.Value, &s); err != nil {
			e.t.Fatalf("snapshot: %v", err)
		}
		if !want[s.ID] {
			e.t.Errorf("snapshot of event %q, which is not a good event of the data", s.ID)
			continue
		}
		sum := sha256.Sum256(m.Value)
		if b, ok := first[s.ID]; ok {
			c.Repeats++
			if b != sum {
				c.Differing++
			}
			continue
		}
		first[s.ID] = sum
		c.Distinct++
	}
	if int(c.Distinct) != len(want) {
		e.t.Errorf("%d distinct snapshots for %d applied events", c.Distinct, len(want))
	}
	if c.Differing > 0 {
		e.t.Errorf("%d repeated snapshots differ from their first copy", c.Differing)
	}
	return c
}

// verify checks a case's outcome against the records it published: the
// stored profiles exactly against the batch recomputation (the events lost
// and applied twice go to r), the DLQ against the injected bad records
// (fault-id → reason; nil when none), and the examples topic against the
// events.
func (e *env) verify(r *row, recs []source.Record, bad map[string]stream.Reason) (dlqCheck, examplesCheck) {
	e.t.Helper()
	evs := eventsOf(recs)
	v := e.compareProfiles(evs, nil, nil)
	r.Lost, r.Dup = v.Lost, v.Dup
	requireExact(e.t, v)
	return e.checkDLQ(bad), e.checkExamples(evs)
}

// ---------------------------------------------------------------- results

// row is one line of the results table.
type row struct {
	Case, Injected, Recovered string
	Lost, Dup                 int64
	PeakRSS                   int64
	Notes                     string
	Status                    string
}

// results collects the rows and sections of RESULTS.md.
type results struct {
	mu        sync.Mutex
	rows      []row
	sections  []string
	loadStart string // the machine's load averages when the suite started
}

// loadAverage returns /proc/loadavg's 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " / ")
}

// report is the suite's results; TestMain writes it.
var report = &results{}

// record adds r to the results when the test ends, with its status.
func record(t *testing.T, r *row) {
	t.Cleanup(func() {
		r.Status = "pass"
		if t.Failed() {
			r.Status = "FAIL"
		}
		if t.Skipped() {
			r.Status = "skipped"
		}
		report.mu.Lock()
		report.rows = append(report.rows, *r)
		report.mu.Unlock()
	})
}

// section adds a Markdown section to the results.
func section(title, body string) {
	report.mu.Lock()
	defer report.mu.Unlock()
	report.sections = append(report.sections, "## "+title+"\n\n"+strings.TrimSpace(body)+"\n")
}

func mib(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func (r *results) write(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "# Fault suite results\n\n")
	fmt.Fprintf(&b, "Written by `scripts/faults.sh` (`go test -tags faults ./faults/...`, see faults/doc.go) on %s, "+
		"%d CPU cores shared with the broker, the Redis servers and other work. Every case replays the bundled "+
		"REES46 sample (17,434 events, 4,504 users; some cases a re-keyed larger copy) through real Kafka and "+
		"Redis with ingester processes at the pipeline's default settings. \"Events lost\" and \"duplicates "+
		"applied\" compare the stored profiles with the batch recomputation (features/featurestest); \"recovered "+
		"in\" runs from the end of the fault to the first flush after it; peak memory is the largest VmHWM of "+
		"the ingester (or trainer) processes. Load averages (1 / 5 / 15 min) of the machine: %s when the suite "+
		"started, %s when it ended; throughput figures depend on them.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"),
		numCPU(), r.loadStart, loadAverage())
	b.WriteString("| case | injected | recovered in | events lost | duplicates applied | peak memory | notes | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.rows {
		lost, dup := strconv.FormatInt(x.Lost, 10), strconv.FormatInt(x.Dup, 10)
		if x.Status == "skipped" {
			lost, dup = "—", "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", x.Case, x.Injected, orDash(x.Recovered),
			lost, dup, mib(x.PeakRSS), x.Notes, x.Status)
	}
	for _, s := range r.sections {
		b.WriteString("\n" + s)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}

// dur formats a duration for the table.
func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

// redisUsedMemory is INFO memory's used_memory of the standalone server.
func (e *env) redisUsedMemory() int64 {
	s, err := e.rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}
