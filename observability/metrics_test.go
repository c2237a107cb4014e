package observability

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
)

func newMetrics(t testing.TB) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// fakeStats mirrors pipeline.Stats' shape: atomics read at scrape time.
type fakeStats struct {
	Consumed, Valid, Applied, Duplicates atomic.Int64

	mu       sync.Mutex
	byReason map[reason]int64
}

type reason string // like stream.Reason

func (s *fakeStats) DeadLetterByReason() map[reason]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[reason]int64{}
	for k, v := range s.byReason {
		out[k] = v
	}
	return out
}

func (s *fakeStats) counters(topic string) PipelineCounters {
	return PipelineCounters{
		Topic: topic, Consumed: s.Consumed.Load, Valid: s.Valid.Load, Applied: s.Applied.Load,
		Duplicates: s.Duplicates.Load, DeadLetterByReason: StringKeys(s.DeadLetterByReason),
	}
}

// populate touches every metric so that each family is exposed.
func populate(t *testing.T, m *Metrics) {
	t.Helper()
	st := &fakeStats{byReason: map[reason]int64{"malformed": 1}}
	if err := m.RegisterPipeline(st.counters("clickstream")); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterLag("clickstream", func() map[int]int64 { return map[int]int64{0: 5} }); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m.Output(OutputTrigger).Observe(now, now.Add(-time.Second), now.Add(-time.Millisecond), trace.SpanContext{})
	m.ObserveFlush(10, 2*time.Millisecond)
	m.SetTrainerPending(3)
	m.AddTrainedExamples(100)
	m.SetChampionVersion("purchase_7d", 4)
	m.SetPrequentialAUC("purchase_7d", ModelChampion, 0.81)
	m.SetPrequentialAUC("purchase_7d", ModelChallenger, 0.83)
	m.AddRollbacks(1)
	m.SetSegmentMembers("vip", 12)
	m.AddSegmentChanges("vip", ChangeEnter, 2)
	m.TriggerEmitted("cart_abandon")
	m.TriggerSuppressed("cart_abandon", "cooldown")
}

// TestMetricsLint: every family passes promlint (naming, units, help).
func TestMetricsLint(t *testing.T) {
	m, reg := newMetrics(t)
	populate(t, m)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "streamprofile_") {
			t.Errorf("metric %s lacks the streamprofile_ prefix", mf.GetName())
		}
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"events_consumed_total", "events_valid_total", "events_applied_total", "events_deduplicated_total",
		"events_dead_lettered_total", "consumer_lag", "e2e_latency_seconds",
		"redis_flush_seconds", "redis_flush_users",
		"trainer_pending_examples", "trainer_examples_total", "model_champion_version", "model_prequential_auc",
		"model_rollbacks_total",
		"segment_members", "segment_changes_total", "triggers_emitted_total", "triggers_suppressed_total",
	} {
		if !got[Namespace+"_"+name] {
			t.Errorf("metric %s_%s not exposed", Namespace, name)
		}
	}
}

func TestNewMetricsErrors(t *testing.T) {
	if _, err := NewMetrics(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewMetrics(nil) err = %v, want ErrInvalidConfig", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	var are prometheus.AlreadyRegisteredError
	if _, err := NewMetrics(reg); !errors.As(err, &are) {
		t.Errorf("second NewMetrics on one registry: err = %v, want AlreadyRegisteredError", err)
	}
	// NewRegistry carries the runtime collectors and still takes Metrics.
	if _, err := NewMetrics(NewRegistry()); err != nil {
		t.Errorf("NewMetrics(NewRegistry()): %v", err)
	}
}

func TestNilMetricsIgnoresCalls(t *testing.T) {
	var m *Metrics
	now := time.Now()
	m.Output(OutputProfile).Observe(now, now, now, trace.SpanContext{})
	m.ObserveFlush(1, time.Millisecond)
	m.SetTrainerPending(1)
	m.AddTrainedExamples(1)
	m.AddRollbacks(1)
	m.SetChampionVersion("t", 1)
	m.SetPrequentialAUC("t", ModelChampion, 0.5)
	m.SetPrequentialAUC("t", ModelChallenger, 0.5)
	m.SetSegmentMembers("s", 1)
	m.AddSegmentChanges("s", ChangeExit, 1)
	m.DeleteSegment("s")
	m.TriggerEmitted("k")
	m.TriggerSuppressed("k", "r")
	if err := m.RegisterPipeline(PipelineCounters{}); err != nil {
		t.Error(err)
	}
	if err := m.RegisterLag("", nil); err != nil {
		t.Error(err)
	}
}

// TestPipelineCountersAtScrapeTime: the collector reports the atomics'
// values as they are when scraped.
func TestPipelineCountersAtScrapeTime(t *testing.T) {
	m, reg := newMetrics(t)
	st := &fakeStats{byReason: map[reason]int64{}}
	if err := m.RegisterPipeline(st.counters("clickstream")); err != nil {
		t.Fatal(err)
	}
	st.Consumed.Store(10)
	st.Valid.Store(8)
	st.Applied.Store(6)
	st.Duplicates.Store(1)
	st.byReason["malformed"] = 2
	st.byReason["late"] = 1
	expect := func(consumed int, late int) string {
		return fmt.Sprintf(`
# HELP streamprofile_events_consumed_total Kafka records read, before decoding.
# TYPE streamprofile_events_consumed_total counter
streamprofile_events_consumed_total{topic="clickstream"} %d
# HELP streamprofile_events_dead_lettered_total Records sent to the dead-letter topic, by reason.
# TYPE streamprofile_events_dead_lettered_total counter
streamprofile_events_dead_lettered_total{reason="late"} %d
streamprofile_events_dead_lettered_total{reason="malformed"} 2
# HELP streamprofile_events_deduplicated_total Events dropped because their event id was already applied.
# TYPE streamprofile_events_deduplicated_total counter
streamprofile_events_deduplicated_total 1
`, consumed, late)
	}
	names := []string{"streamprofile_events_consumed_total", "streamprofile_events_dead_lettered_total", "streamprofile_events_deduplicated_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect(10, 1)), names...); err != nil {
		t.Error(err)
	}
	st.Consumed.Add(5)
	st.mu.Lock()
	st.byReason["late"] += 3
	st.mu.Unlock()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expect(15, 4)), names...); err != nil {
		t.Errorf("after more events: %v", err)
	}
	// The counters are registered once per process: a second pipeline
	// would expose its unlabelled counters twice.
	if err := m.RegisterPipeline(st.counters("clickstream")); err == nil {
		t.Error("registering the pipeline twice succeeded")
	}
	if err := m.RegisterPipeline(PipelineCounters{Consumed: st.Consumed.Load}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no topic: err = %v, want ErrInvalidConfig", err)
	}
}

func TestStringKeys(t *testing.T) {
	f := StringKeys(func() map[reason]int64 { return map[reason]int64{"a": 1, "b": 2} })
	got := f()
	if len(got) != 2 || got["a"] != 1 || got["b"] != 2 {
		t.Errorf("StringKeys = %v", got)
	}
}

// TestLagCollector: lag follows the assignment at each scrape; unknown lag
// is omitted, revoked partitions disappear.
func TestLagCollector(t *testing.T) {
	m, reg := newMetrics(t)
	var mu sync.Mutex
	assigned := map[int]int64{0: 12, 1: -1, 2: 0}
	err := m.RegisterLag("clickstream", func() map[int]int64 {
		mu.Lock()
		defer mu.Unlock()
		out := map[int]int64{}
		for k, v := range assigned {
			out[k] = v
		}
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	const head = `
# HELP streamprofile_consumer_lag High watermark minus the next offset to process, per assigned partition.
# TYPE streamprofile_consumer_lag gauge
`
	want := head + `streamprofile_consumer_lag{partition="0",topic="clickstream"} 12
streamprofile_consumer_lag{partition="2",topic="clickstream"} 0
`
	lagNames := []string{"streamprofile_consumer_lag"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), lagNames...); err != nil {
		t.Error(err)
	}
	mu.Lock()
	assigned = map[int]int64{1: 40}
	mu.Unlock()
	want = head + `streamprofile_consumer_lag{partition="1",topic="clickstream"} 40
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), lagNames...); err != nil {
		t.Errorf("after rebalance: %v", err)
	}
	if err := m.RegisterLag("", nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("RegisterLag without topic: %v", err)
	}
}

// histogram returns the gathered histogram of name whose labels include
// the label pairs kv (name, value, ...), or nil.
func histogram(t *testing.T, reg prometheus.Gatherer, name string, kv ...string) *dto.Histogram {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, mt := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range mt.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if have[kv[i]] != kv[i+1] {
					continue metric
				}
			}
			return mt.GetHistogram()
		}
	}
	return nil
}

// e2e returns the e2e latency histogram of stage and output.
func e2e(t *testing.T, reg prometheus.Gatherer, stage, output string) *dto.Histogram {
	t.Helper()
	return histogram(t, reg, "streamprofile_e2e_latency_seconds", "stage", stage, "output", output)
}

func TestOutputLatencyObserve(t *testing.T) {
	m, reg := newMetrics(t)
	now := time.Unix(1_700_000_000, 0)
	o := m.Output(OutputTrigger)
	o.Observe(now, now.Add(-1500*time.Millisecond), now.Add(-3*time.Millisecond), trace.SpanContext{})
	o.Observe(now, time.Time{}, now.Add(time.Second), trace.SpanContext{}) // unknown event time; producer clock ahead
	sampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab}, SpanID: trace.SpanID{0xcd}, TraceFlags: trace.FlagsSampled})
	o.Observe(now, time.Time{}, now.Add(-7*time.Millisecond), sampled)

	ev := e2e(t, reg, StageEvent, OutputTrigger)
	if ev.GetSampleCount() != 1 || math.Abs(ev.GetSampleSum()-1.5) > 1e-9 {
		t.Errorf("event latency: count %d sum %v, want 1 and 1.5", ev.GetSampleCount(), ev.GetSampleSum())
	}
	in := e2e(t, reg, StageIngest, OutputTrigger)
	if in.GetSampleCount() != 3 || math.Abs(in.GetSampleSum()-0.010) > 1e-9 {
		t.Errorf("ingest latency: count %d sum %v, want 3 and 0.010 (negative clamped to 0)", in.GetSampleCount(), in.GetSampleSum())
	}
	var exemplar *dto.Exemplar
	for _, b := range in.GetBucket() {
		if b.GetExemplar() != nil {
			exemplar = b.GetExemplar()
		}
	}
	if exemplar == nil {
		t.Fatal("no exemplar recorded for the sampled observation")
	}
	labels := map[string]string{}
	for _, l := range exemplar.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["trace_id"] != sampled.TraceID().String() || labels["span_id"] != sampled.SpanID().String() {
		t.Errorf("exemplar labels %v, want the sampled span's ids", labels)
	}
	if got := exemplar.GetValue(); math.Abs(got-0.007) > 1e-9 {
		t.Errorf("exemplar value %v, want 0.007", got)
	}
}

func TestLatencyBucketsSpanMillisToSeconds(t *testing.T) {
	lb := LatencyBuckets()
	if lb[0] != 0.0005 || lb[len(lb)-1] != 10 {
		t.Errorf("latency buckets %v, want 0.5ms … 10s", lb)
	}
	for i := 1; i < len(lb); i++ {
		if r := lb[i] / lb[i-1]; r < 1.9 || r > 2.6 {
			t.Errorf("buckets %v and %v are %.2fx apart", lb[i-1], lb[i], r)
		}
	}
	lb[0] = 42
	if LatencyBuckets()[0] != 0.0005 {
		t.Error("LatencyBuckets returns shared state")
	}
}

// TestBatchMetrics: a successful flush observes every event (profile) and
// emitted record (its output) once, and the flush itself; a failed one
// observes nothing.
func TestBatchMetrics(t *testing.T) {
	m, reg := newMetrics(t)
	b := NewBatch(nil, m)
	now := time.Unix(1_700_000_000, 0)
	b.now = func() time.Time { return now }
	ctx := t.Context()
	for i := range 3 {
		b.Event(noopSpan, now.Add(-time.Duration(i+1)*time.Second), now.Add(-time.Duration(i+1)*time.Millisecond))
	}
	var trig, dlq = emptyMessage("triggers"), emptyMessage("clickstream.dlq")
	b.Emit(ctx, &trig, OutputTrigger, now.Add(-time.Second), now.Add(-4*time.Millisecond))
	b.Emit(ctx, &dlq, OutputDeadLetter, time.Time{}, now.Add(-2*time.Millisecond))
	_, f := b.StartFlush(ctx)
	b.EndFlush(f, 3, 9, 4*time.Millisecond, nil)

	checks := []struct {
		name   string
		labels []string
		count  uint64
		sum    float64
	}{
		{"streamprofile_e2e_latency_seconds", []string{"stage", StageIngest, "output", OutputProfile}, 3, 0.006},
		{"streamprofile_e2e_latency_seconds", []string{"stage", StageEvent, "output", OutputProfile}, 3, 6},
		{"streamprofile_e2e_latency_seconds", []string{"stage", StageIngest, "output", OutputTrigger}, 1, 0.004},
		{"streamprofile_e2e_latency_seconds", []string{"stage", StageEvent, "output", OutputTrigger}, 1, 1},
		{"streamprofile_e2e_latency_seconds", []string{"stage", StageIngest, "output", OutputDeadLetter}, 1, 0.002},
		{"streamprofile_redis_flush_users", nil, 1, 3},
		{"streamprofile_redis_flush_seconds", nil, 1, 0.004},
	}
	for _, c := range checks {
		h := histogram(t, reg, c.name, c.labels...)
		if h.GetSampleCount() != c.count || math.Abs(h.GetSampleSum()-c.sum) > 1e-9 {
			t.Errorf("%s%v: count %d sum %v, want %d %v", c.name, c.labels, h.GetSampleCount(), h.GetSampleSum(), c.count, c.sum)
		}
	}
	if h := e2e(t, reg, StageEvent, OutputDeadLetter); h != nil && h.GetSampleCount() != 0 {
		t.Error("a dead letter without event time was observed in event_latency")
	}

	// A failed flush: nothing observed, batch reset.
	b.Event(noopSpan, now, now)
	b.Emit(ctx, &trig, OutputTrigger, now, now)
	_, f = b.StartFlush(ctx)
	b.EndFlush(f, 0, 0, 0, errors.New("redis down"))
	if h := histogram(t, reg, "streamprofile_redis_flush_seconds"); h.GetSampleCount() != 1 {
		t.Errorf("a failed flush was observed: %d flushes", h.GetSampleCount())
	}
	if h := e2e(t, reg, StageIngest, OutputProfile); h.GetSampleCount() != 3 {
		t.Errorf("profile latency observed for a failed flush: count %d", h.GetSampleCount())
	}
	_, f = b.StartFlush(ctx)
	b.EndFlush(f, 0, 0, 0, nil)
	if h := e2e(t, reg, StageIngest, OutputTrigger); h.GetSampleCount() != 1 {
		t.Errorf("a failed flush's records were observed by the next flush: count %d", h.GetSampleCount())
	}
}

func TestSegmentAndModelMetrics(t *testing.T) {
	m, reg := newMetrics(t)
	m.SetChampionVersion("purchase_7d", 3)
	m.SetPrequentialAUC("purchase_7d", ModelChampion, 0.7)
	m.SetChampionVersion("purchase_7d", 4)
	m.SetPrequentialAUC("purchase_7d", ModelChampion, 0.75)
	m.SetPrequentialAUC("purchase_7d", ModelChallenger, 0.78)
	m.SetPrequentialAUC("purchase_7d", "network", 0.9) // not a contract value: ignored
	m.SetPrequentialAUC("repeat_90d", ModelChallenger, 0.6)
	m.SetPrequentialAUC("repeat_90d", ModelChallenger, math.NaN()) // one class only: series removed
	m.SetSegmentMembers("vip", 10)
	m.AddSegmentChanges("vip", ChangeEnter, 4)
	m.AddSegmentChanges("vip", ChangeExit, 1)
	m.AddSegmentChanges("vip", ChangeExit, 0)
	m.AddTrainedExamples(-5) // ignored: counters only grow
	want := `
# HELP streamprofile_model_champion_version Version number of the model currently serving the task (the champion).
# TYPE streamprofile_model_champion_version gauge
streamprofile_model_champion_version{task="purchase_7d"} 4
# HELP streamprofile_model_prequential_auc Prequential (test-then-train) AUC over the recent window, per task and model (champion, challenger).
# TYPE streamprofile_model_prequential_auc gauge
streamprofile_model_prequential_auc{model="challenger",task="purchase_7d"} 0.78
streamprofile_model_prequential_auc{model="champion",task="purchase_7d"} 0.75
# HELP streamprofile_segment_changes_total Segment membership changes; change is enter or exit.
# TYPE streamprofile_segment_changes_total counter
streamprofile_segment_changes_total{change="enter",segment="vip"} 4
streamprofile_segment_changes_total{change="exit",segment="vip"} 1
# HELP streamprofile_trainer_examples_total Examples the online trainer has learned from; rate() gives examples per second.
# TYPE streamprofile_trainer_examples_total counter
streamprofile_trainer_examples_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "streamprofile_model_champion_version",
		"streamprofile_model_prequential_auc", "streamprofile_segment_changes_total", "streamprofile_trainer_examples_total"); err != nil {
		t.Error(err)
	}
	m.DeleteSegment("vip")
	if n, err := testutil.GatherAndCount(reg, "streamprofile_segment_members", "streamprofile_segment_changes_total"); err != nil || n != 0 {
		t.Errorf("after DeleteSegment: %d series (err %v), want 0", n, err)
	}
}

// BenchmarkOutputLatencyObserve is the cost of one end-to-end latency
// observation (two histograms) without exemplar.
func BenchmarkOutputLatencyObserve(b *testing.B) {
	m, _ := newMetrics(b)
	o := m.Output(OutputProfile)
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		o.observe(now, now-int64(time.Second), now-int64(time.Millisecond), trace.SpanContext{})
	}
}

func emptyMessage(topic string) kafka.Message { return kafka.Message{Topic: topic} }
