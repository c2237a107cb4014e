package observability

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
)

// Namespace prefixes every metric name of this package.
const Namespace = "streamprofile"

// Values of the output label of the end-to-end latency histograms: what the
// pipeline produced from an event.
const (
	// OutputProfile: the event's effect on its user's profile is durable
	// in Redis (observed when the flush that carries it returns).
	OutputProfile = "profile"
	// OutputTrigger: a trigger record caused by the event was acknowledged
	// by Kafka.
	OutputTrigger = "trigger"
	// OutputScore: a score record caused by the event was acknowledged.
	OutputScore = "score"
	// OutputDeadLetter: the record's dead letter was acknowledged.
	OutputDeadLetter = "dlq"
)

// LatencyBuckets returns the upper bounds, in seconds, of the latency
// histograms: 0.5ms to 10s, 2 to 2.5x apart.
func LatencyBuckets() []float64 {
	return []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
}

// SizeBuckets returns the upper bounds of the flush size histograms (users
// and Redis commands per flush).
func SizeBuckets() []float64 {
	return []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000}
}

// Metrics holds the service's Prometheus metrics. Every name starts with
// "streamprofile_" and every family, label and closed label value is the one
// deploy/METRICS.md (the metrics contract, deploy.LoadContract) lists; the
// tests check the registry against it. Create it with NewMetrics; its
// methods are safe for concurrent use and a nil *Metrics ignores every
// call, so code paths can be instrumented unconditionally.
//
// Metrics observed on the hot path (histograms) are reached through
// pre-resolved children (Output) or label-less collectors, so an
// observation is a few atomic adds. Counters the pipeline already keeps
// (pipeline.Stats) are not duplicated: RegisterPipeline exports them at
// scrape time, as does RegisterLag for the consumer lag.
//
// Metrics and their labels:
//
//	streamprofile_e2e_latency_seconds{stage,output}     histogram: stage (event: the event's ts; ingest: its Kafka timestamp) → output done
//	streamprofile_redis_flush_seconds                   histogram: one flush's Redis write (features.FlushStats.Duration)
//	streamprofile_redis_flush_users                     histogram: user states written per flush
//	streamprofile_trainer_pending_examples              gauge: examples waiting for their label or for training
//	streamprofile_trainer_examples_total                counter: examples trained on (rate() = examples/s)
//	streamprofile_model_champion_version{task}          gauge: version of the serving (champion) model
//	streamprofile_model_prequential_auc{task,model}     gauge: prequential AUC; model = champion | challenger
//	streamprofile_model_rollbacks_total                 counter: champions rolled back
//	streamprofile_segment_members{segment}              gauge: users in the segment
//	streamprofile_segment_changes_total{segment,change} counter: change = enter | exit
//	streamprofile_triggers_emitted_total{kind}          counter
//	streamprofile_triggers_suppressed_total{kind,reason} counter
//
// Exported at scrape time (see RegisterPipeline, RegisterLag):
//
//	streamprofile_events_consumed_total{topic}, streamprofile_events_valid_total,
//	streamprofile_events_applied_total, streamprofile_events_deduplicated_total,
//	streamprofile_events_dead_lettered_total{reason},
//	streamprofile_consumer_lag{topic,partition} (gauge).
//
// The flush count, users written and time spent flushing are the
// _count and _sum series of the flush histograms.
type Metrics struct {
	reg prometheus.Registerer

	e2eLatency   *prometheus.HistogramVec
	flushSeconds prometheus.Histogram
	flushUsers   prometheus.Histogram

	trainerPending     prometheus.Gauge
	trainerExamples    prometheus.Counter
	championVersion    *prometheus.GaugeVec
	prequentialAUC     *prometheus.GaugeVec
	rollbacks          prometheus.Counter
	segmentMembers     *prometheus.GaugeVec
	segmentChanges     *prometheus.CounterVec
	triggersEmitted    *prometheus.CounterVec
	triggersSuppressed *prometheus.CounterVec
}

// Values of the stage label of streamprofile_e2e_latency_seconds: where
// the measured latency starts.
const (
	// StageEvent: the event's own timestamp (its ts field). Includes the
	// client's delay; meaningless for replays of old data.
	StageEvent = "event"
	// StageIngest: the record's Kafka timestamp (append time). The
	// pipeline's own end-to-end latency.
	StageIngest = "ingest"
)

// Values of the model label of streamprofile_model_prequential_auc.
const (
	ModelChampion   = "champion"
	ModelChallenger = "challenger"
)

// NewMetrics creates the metrics and registers them with reg (required: this
// package never uses the global registry). It fails when reg already holds
// metrics of the same names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, &FieldError{Field: "NewMetrics(reg)", Reason: "a prometheus.Registerer is required"}
	}
	m := &Metrics{
		reg: reg,
		e2eLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "e2e_latency_seconds",
			Help:    "Seconds from a start point (stage: event = the event's own timestamp, ingest = its Kafka timestamp) until its output is done: durable in Redis (output=profile) or acknowledged by Kafka (trigger, score, dlq, ...).",
			Buckets: LatencyBuckets()}, []string{"stage", "output"}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "redis_flush_seconds",
			Help: "Duration of one Redis flush round trip (features, offset stamps and checkpoint).", Buckets: LatencyBuckets()}),
		flushUsers: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "redis_flush_users",
			Help: "Users written by one Redis flush.", Buckets: SizeBuckets()}),
		trainerPending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "trainer_pending_examples",
			Help: "Training examples waiting for their label window to close or for the next training step."}),
		trainerExamples: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "trainer_examples_total",
			Help: "Examples the online trainer has learned from; rate() gives examples per second."}),
		championVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "model_champion_version",
			Help: "Version number of the model currently serving the task (the champion)."}, []string{"task"}),
		prequentialAUC: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "model_prequential_auc",
			Help: "Prequential (test-then-train) AUC over the recent window, per task and model (champion, challenger)."}, []string{"task", "model"}),
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "model_rollbacks_total",
			Help: "Champion models rolled back to the previous version."}),
		segmentMembers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "segment_members",
			Help: "Users currently in the segment."}, []string{"segment"}),
		segmentChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "segment_changes_total",
			Help: "Segment membership changes; change is enter or exit."}, []string{"segment", "change"}),
		triggersEmitted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "triggers_emitted_total",
			Help: "Triggers emitted, by kind."}, []string{"kind"}),
		triggersSuppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "triggers_suppressed_total",
			Help: "Triggers that fired but were not emitted, by kind and reason (cooldown, consent, ...)."}, []string{"kind", "reason"}),
	}
	for _, c := range []prometheus.Collector{
		m.e2eLatency, m.flushSeconds, m.flushUsers,
		m.trainerPending, m.trainerExamples, m.championVersion, m.prequentialAUC, m.rollbacks,
		m.segmentMembers, m.segmentChanges, m.triggersEmitted, m.triggersSuppressed,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// NewRegistry returns a registry with the Go runtime and process collectors
// (go_*, process_*), ready for NewMetrics and AdminConfig.Registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// OutputLatency observes the end-to-end latencies of one output; get it once
// from Metrics.Output and keep it. A nil *OutputLatency ignores Observe.
type OutputLatency struct {
	event, ingest prometheus.Observer
}

// Output returns the latency observers of output (one of the Output*
// constants, or another low-cardinality name): the series of
// streamprofile_e2e_latency_seconds with stage event and ingest.
func (m *Metrics) Output(output string) *OutputLatency {
	if m == nil {
		return nil
	}
	return &OutputLatency{event: m.e2eLatency.WithLabelValues(StageEvent, output), ingest: m.e2eLatency.WithLabelValues(StageIngest, output)}
}

// Observe records the latency of an output done at now for an event whose
// own time is eventTime and whose record's Kafka timestamp is ingestTime.
// A zero time skips its stage. When sc is sampled the observation carries
// it as an exemplar (trace_id, span_id), linking the histogram bucket to
// the trace (exposed with the OpenMetrics format).
func (o *OutputLatency) Observe(now, eventTime, ingestTime time.Time, sc trace.SpanContext) {
	var ev, in int64
	if !eventTime.IsZero() {
		ev = eventTime.UnixNano()
	}
	if !ingestTime.IsZero() {
		in = ingestTime.UnixNano()
	}
	o.observe(now.UnixNano(), ev, in, sc)
}

// observe is Observe on Unix nanoseconds; 0 means unknown.
func (o *OutputLatency) observe(now, event, ingest int64, sc trace.SpanContext) {
	if o == nil {
		return
	}
	if event != 0 {
		observe(o.event, float64(now-event)/1e9, sc)
	}
	if ingest != 0 {
		observe(o.ingest, float64(now-ingest)/1e9, sc)
	}
}

func observe(o prometheus.Observer, v float64, sc trace.SpanContext) {
	if v < 0 {
		v = 0 // clock skew between producer and us
	}
	if sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()})
			return
		}
	}
	o.Observe(v)
}

// ObserveFlush records one successful flush: the users it wrote and the
// duration of its Redis write (features.FlushStats).
func (m *Metrics) ObserveFlush(users int, d time.Duration) {
	if m == nil {
		return
	}
	m.flushUsers.Observe(float64(users))
	m.flushSeconds.Observe(d.Seconds())
}

// SetTrainerPending sets the number of pending training examples.
func (m *Metrics) SetTrainerPending(n int) {
	if m != nil {
		m.trainerPending.Set(float64(n))
	}
}

// AddTrainedExamples counts n examples trained on.
func (m *Metrics) AddTrainedExamples(n int64) {
	if m != nil && n > 0 {
		m.trainerExamples.Add(float64(n))
	}
}

// AddRollbacks counts n champion rollbacks.
func (m *Metrics) AddRollbacks(n int64) {
	if m != nil && n > 0 {
		m.rollbacks.Add(float64(n))
	}
}

// SetChampionVersion records the version of task's champion model.
func (m *Metrics) SetChampionVersion(task string, version int64) {
	if m != nil {
		m.championVersion.WithLabelValues(task).Set(float64(version))
	}
}

// SetPrequentialAUC records the prequential AUC of task's model, which is
// ModelChampion or ModelChallenger (the contract's closed set; other
// values are ignored). A NaN AUC (a window holding one class only) removes
// the series instead of exporting NaN.
func (m *Metrics) SetPrequentialAUC(task, model string, auc float64) {
	if m == nil || (model != ModelChampion && model != ModelChallenger) {
		return
	}
	if math.IsNaN(auc) {
		m.prequentialAUC.DeleteLabelValues(task, model)
		return
	}
	m.prequentialAUC.WithLabelValues(task, model).Set(auc)
}

// Segment changes (the change label of streamprofile_segment_changes_total).
const (
	ChangeEnter = "enter"
	ChangeExit  = "exit"
)

// SetSegmentMembers sets the member count of segment.
func (m *Metrics) SetSegmentMembers(segment string, n int) {
	if m != nil {
		m.segmentMembers.WithLabelValues(segment).Set(float64(n))
	}
}

// AddSegmentChanges counts n membership changes of segment; change is
// ChangeEnter or ChangeExit (other values are ignored).
func (m *Metrics) AddSegmentChanges(segment, change string, n int) {
	if m != nil && n > 0 && (change == ChangeEnter || change == ChangeExit) {
		m.segmentChanges.WithLabelValues(segment, change).Add(float64(n))
	}
}

// DeleteSegment removes the series of a segment that no longer exists.
func (m *Metrics) DeleteSegment(segment string) {
	if m == nil {
		return
	}
	m.segmentMembers.DeleteLabelValues(segment)
	m.segmentChanges.DeletePartialMatch(prometheus.Labels{"segment": segment})
}

// TriggerEmitted counts one emitted trigger of kind.
func (m *Metrics) TriggerEmitted(kind string) {
	if m != nil {
		m.triggersEmitted.WithLabelValues(kind).Inc()
	}
}

// TriggerSuppressed counts one trigger of kind that fired but was not
// emitted, for reason.
func (m *Metrics) TriggerSuppressed(kind, reason string) {
	if m != nil {
		m.triggersSuppressed.WithLabelValues(kind, reason).Inc()
	}
}

// PipelineCounters are the pipeline's own monotonic counters, read when
// Prometheus scrapes (pipeline.Stats' atomics: pass their Load methods, e.g.
// Consumed: st.Consumed.Load). Nothing is added to the hot path. A nil
// func omits its metric. Topic is required; it becomes the topic label of
// streamprofile_events_consumed_total.
type PipelineCounters struct {
	Topic string

	Consumed   func() int64 // streamprofile_events_consumed_total{topic}
	Valid      func() int64 // streamprofile_events_valid_total
	Applied    func() int64 // streamprofile_events_applied_total
	Duplicates func() int64 // streamprofile_events_deduplicated_total
	// DeadLetterByReason feeds
	// streamprofile_events_dead_lettered_total{reason}; wrap
	// pipeline.Stats.DeadLetterByReason with StringKeys.
	DeadLetterByReason func() map[string]int64
}

// StringKeys adapts a map-returning func with string-like keys (such as
// stream.Reason) to PipelineCounters.DeadLetterByReason.
func StringKeys[K ~string](f func() map[K]int64) func() map[string]int64 {
	return func() map[string]int64 {
		in := f()
		out := make(map[string]int64, len(in))
		for k, v := range in {
			out[string(k)] += v
		}
		return out
	}
}

// funcCounter is one counter of a pipelineCollector.
type funcCounter struct {
	desc *prometheus.Desc
	read func() int64
}

// pipelineCollector exports PipelineCounters at scrape time.
type pipelineCollector struct {
	counters []funcCounter
	dlq      *prometheus.Desc
	byReason func() map[string]int64
}

func (c *pipelineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.counters {
		ch <- f.desc
	}
	if c.dlq != nil {
		ch <- c.dlq
	}
}

func (c *pipelineCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.counters {
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(f.read()))
	}
	if c.dlq != nil {
		for reason, n := range c.byReason() {
			ch <- prometheus.MustNewConstMetric(c.dlq, prometheus.CounterValue, float64(n), reason)
		}
	}
}

// RegisterPipeline registers a collector that reads pc at scrape time. Call
// it once per process: only the consumed counter is labelled by topic.
func (m *Metrics) RegisterPipeline(pc PipelineCounters) error {
	if m == nil {
		return nil
	}
	if pc.Topic == "" {
		return &FieldError{Field: "PipelineCounters.Topic", Reason: "required"}
	}
	c := &pipelineCollector{}
	add := func(read func() int64, name, help string, labels prometheus.Labels) {
		if read != nil {
			c.counters = append(c.counters, funcCounter{
				desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, nil, labels),
				read: read})
		}
	}
	add(pc.Consumed, "events_consumed_total", "Kafka records read, before decoding.", prometheus.Labels{"topic": pc.Topic})
	add(pc.Valid, "events_valid_total", "Records that decoded and passed validation.", nil)
	add(pc.Applied, "events_applied_total", "Events applied to a user's features (not duplicates, not late).", nil)
	add(pc.Duplicates, "events_deduplicated_total", "Events dropped because their event id was already applied.", nil)
	if pc.DeadLetterByReason != nil {
		c.dlq = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "events_dead_lettered_total"),
			"Records sent to the dead-letter topic, by reason.", []string{"reason"}, nil)
		c.byReason = pc.DeadLetterByReason
	}
	return m.reg.Register(c)
}

// lagCollector exports consumer lag at scrape time.
type lagCollector struct {
	lag  *prometheus.Desc
	read func() map[int]int64
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.lag }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for p, lag := range c.read() {
		if lag < 0 {
			continue // unknown: no fetch yet
		}
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(lag), strconv.Itoa(p))
	}
}

// RegisterLag registers streamprofile_consumer_lag{topic,partition} (high
// watermark minus the next offset to process, in records), read from
// assigned at scrape time: pass stream.Group.Assigned. Partitions no longer
// assigned disappear from the next scrape; a negative lag (unknown) is
// omitted. Call it once per topic.
func (m *Metrics) RegisterLag(topic string, assigned func() map[int]int64) error {
	if m == nil {
		return nil
	}
	if topic == "" || assigned == nil {
		return &FieldError{Field: "RegisterLag", Reason: "topic and assigned are required"}
	}
	return m.reg.Register(&lagCollector{
		lag: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "consumer", "lag"),
			"High watermark minus the next offset to process, per assigned partition.", []string{"partition"},
			prometheus.Labels{"topic": topic}),
		read: assigned,
	})
}
