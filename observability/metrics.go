package observability

import (
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
// "streamprofile_". Create it with NewMetrics; its methods are safe for
// concurrent use and a nil *Metrics ignores every call, so code paths can be
// instrumented unconditionally.
//
// Metrics observed on the hot path (histograms) are reached through
// pre-resolved children (Output) or label-less collectors, so an
// observation is a few atomic adds. Counters the pipeline already keeps
// (pipeline.Stats) are not duplicated: RegisterPipeline exports them at
// scrape time, as does RegisterLag for the consumer lag.
//
// Metrics and their labels:
//
//	streamprofile_event_latency_seconds{output}        histogram: event time (ts) → output done
//	streamprofile_ingest_latency_seconds{output}       histogram: Kafka record timestamp → output done
//	streamprofile_redis_flush_duration_seconds         histogram: one flush's Redis write (features.FlushStats.Duration)
//	streamprofile_redis_flush_users                    histogram: user states written per flush
//	streamprofile_redis_flush_commands                 histogram: Redis commands sent per flush
//	streamprofile_redis_flush_errors_total             counter: failed flushes
//	streamprofile_training_pending_examples            gauge: examples waiting for their label or for training
//	streamprofile_trainer_examples_total               counter: examples trained on (rate() = examples/s)
//	streamprofile_model_champion_version{task}         gauge: version of the serving (champion) model
//	streamprofile_model_champion_auc{task}             gauge: its prequential AUC
//	streamprofile_segment_members{segment}             gauge: users in the segment
//	streamprofile_segment_changes_total{segment,change} counter: change = enter | exit
//	streamprofile_triggers_emitted_total{kind}         counter
//	streamprofile_triggers_suppressed_total{kind,reason} counter
//
// Exported at scrape time (see RegisterPipeline, RegisterLag):
//
//	streamprofile_events_consumed_total{topic}, _valid_total, _applied_total,
//	_deduplicated_total, _replayed_total, _dead_lettered_total{topic,reason},
//	streamprofile_records_emitted_total{topic},
//	streamprofile_redis_flushes_total{topic}, _flushed_users_total,
//	_commands_total, _loads_total, _flush_seconds_total,
//	streamprofile_consumer_lag{topic,partition} (gauge),
//	streamprofile_consumer_assigned_partitions{topic} (gauge).
type Metrics struct {
	reg prometheus.Registerer

	eventLatency  *prometheus.HistogramVec
	ingestLatency *prometheus.HistogramVec
	flushDuration prometheus.Histogram
	flushUsers    prometheus.Histogram
	flushCommands prometheus.Histogram
	flushErrors   prometheus.Counter

	trainingPending    prometheus.Gauge
	trainedExamples    prometheus.Counter
	championVersion    *prometheus.GaugeVec
	championAUC        *prometheus.GaugeVec
	segmentMembers     *prometheus.GaugeVec
	segmentChanges     *prometheus.CounterVec
	triggersEmitted    *prometheus.CounterVec
	triggersSuppressed *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (required: this
// package never uses the global registry). It fails when reg already holds
// metrics of the same names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, &FieldError{Field: "NewMetrics(reg)", Reason: "a prometheus.Registerer is required"}
	}
	hist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	}
	m := &Metrics{
		reg: reg,
		eventLatency: hist("event_latency_seconds",
			"Time from an event's own timestamp (ts) until its output is done: durable in Redis (output=profile) or acknowledged by Kafka (trigger, score, dlq). Includes client-side delay; meaningless for replays of old data.",
			LatencyBuckets(), "output"),
		ingestLatency: hist("ingest_latency_seconds",
			"Time from a record's Kafka timestamp (append time) until its output is done (see event_latency_seconds). The pipeline's own end-to-end latency.",
			LatencyBuckets(), "output"),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "redis_flush_duration_seconds",
			Help: "Duration of one flush's Redis write of user states and checkpoint (one round trip).", Buckets: LatencyBuckets()}),
		flushUsers: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "redis_flush_users",
			Help: "User states written per flush.", Buckets: SizeBuckets()}),
		flushCommands: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "redis_flush_commands",
			Help: "Redis commands sent per flush.", Buckets: SizeBuckets()}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "redis_flush_errors_total",
			Help: "Flushes that failed (the partition restarts from its checkpoint)."}),
		trainingPending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "training_pending_examples",
			Help: "Training examples waiting for their label window to close or for the trainer."}),
		trainedExamples: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "trainer_examples_total",
			Help: "Examples the online trainer has trained on; rate() gives examples per second."}),
		championVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "model_champion_version",
			Help: "Version of the champion (serving) model per task."}, []string{"task"}),
		championAUC: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "model_champion_auc",
			Help: "Prequential (test-then-train) AUC of the champion model per task."}, []string{"task"}),
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
		m.eventLatency, m.ingestLatency, m.flushDuration, m.flushUsers, m.flushCommands, m.flushErrors,
		m.trainingPending, m.trainedExamples, m.championVersion, m.championAUC,
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
// constants, or another low-cardinality name).
func (m *Metrics) Output(output string) *OutputLatency {
	if m == nil {
		return nil
	}
	return &OutputLatency{event: m.eventLatency.WithLabelValues(output), ingest: m.ingestLatency.WithLabelValues(output)}
}

// Observe records the latency of an output done at now for an event whose
// own time is eventTime and whose record's Kafka timestamp is ingestTime.
// A zero time skips its histogram. When sc is sampled the observation
// carries it as an exemplar (trace_id, span_id), linking the histogram
// bucket to the trace (exposed with the OpenMetrics format).
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

// ObserveFlush records one successful flush: users and commands written and
// the duration of its Redis write (features.FlushStats).
func (m *Metrics) ObserveFlush(users, commands int, d time.Duration) {
	if m == nil {
		return
	}
	m.flushUsers.Observe(float64(users))
	m.flushCommands.Observe(float64(commands))
	m.flushDuration.Observe(d.Seconds())
}

// FlushFailed counts one failed flush.
func (m *Metrics) FlushFailed() {
	if m != nil {
		m.flushErrors.Inc()
	}
}

// SetTrainingPending sets the number of pending training examples.
func (m *Metrics) SetTrainingPending(n int) {
	if m != nil {
		m.trainingPending.Set(float64(n))
	}
}

// AddTrainedExamples counts n examples trained on.
func (m *Metrics) AddTrainedExamples(n int) {
	if m != nil && n > 0 {
		m.trainedExamples.Add(float64(n))
	}
}

// SetChampion records the champion model of task: its version and its
// prequential AUC.
func (m *Metrics) SetChampion(task string, version int64, auc float64) {
	if m == nil {
		return
	}
	m.championVersion.WithLabelValues(task).Set(float64(version))
	m.championAUC.WithLabelValues(task).Set(auc)
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

// AddSegmentChanges counts n membership changes (ChangeEnter, ChangeExit) of
// segment.
func (m *Metrics) AddSegmentChanges(segment, change string, n int) {
	if m != nil && n > 0 {
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
// func omits its metric. Topic is required; it becomes the topic label.
type PipelineCounters struct {
	Topic string

	Consumed   func() int64 // streamprofile_events_consumed_total
	Valid      func() int64 // streamprofile_events_valid_total
	Applied    func() int64 // streamprofile_events_applied_total
	Duplicates func() int64 // streamprofile_events_deduplicated_total
	Replayed   func() int64 // streamprofile_events_replayed_total
	Emitted    func() int64 // streamprofile_records_emitted_total
	Flushes    func() int64 // streamprofile_redis_flushes_total
	FlushUsers func() int64 // streamprofile_redis_flushed_users_total
	RedisCmds  func() int64 // streamprofile_redis_commands_total
	RedisLoads func() int64 // streamprofile_redis_loads_total
	FlushNanos func() int64 // streamprofile_redis_flush_seconds_total (nanoseconds in)
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
	desc  *prometheus.Desc
	read  func() int64
	scale float64
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
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.CounterValue, float64(f.read())*f.scale)
	}
	if c.dlq != nil {
		for reason, n := range c.byReason() {
			ch <- prometheus.MustNewConstMetric(c.dlq, prometheus.CounterValue, float64(n), reason)
		}
	}
}

// RegisterPipeline registers a collector that reads pc at scrape time. Call
// it once per topic.
func (m *Metrics) RegisterPipeline(pc PipelineCounters) error {
	if m == nil {
		return nil
	}
	if pc.Topic == "" {
		return &FieldError{Field: "PipelineCounters.Topic", Reason: "required"}
	}
	topic := prometheus.Labels{"topic": pc.Topic}
	c := &pipelineCollector{}
	add := func(read func() int64, name, help string, scale float64) {
		if read != nil {
			c.counters = append(c.counters, funcCounter{
				desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, nil, topic),
				read: read, scale: scale})
		}
	}
	add(pc.Consumed, "events_consumed_total", "Records read from the input topic.", 1)
	add(pc.Valid, "events_valid_total", "Records that decoded and validated.", 1)
	add(pc.Applied, "events_applied_total", "Events applied to user features.", 1)
	add(pc.Duplicates, "events_deduplicated_total", "Events dropped as duplicates of an event id already applied.", 1)
	add(pc.Replayed, "events_replayed_total", "Events skipped after a restart because Redis already holds their effect.", 1)
	add(pc.Emitted, "records_emitted_total", "Records produced (dead letters and stage outputs) and acknowledged.", 1)
	add(pc.Flushes, "redis_flushes_total", "Partition flushes written to Redis.", 1)
	add(pc.FlushUsers, "redis_flushed_users_total", "User states written by flushes.", 1)
	add(pc.RedisCmds, "redis_commands_total", "Redis commands sent by flushes.", 1)
	add(pc.RedisLoads, "redis_loads_total", "Batched Redis loads of user states.", 1)
	add(pc.FlushNanos, "redis_flush_seconds_total", "Total time spent in flushes.", 1e-9)
	if pc.DeadLetterByReason != nil {
		c.dlq = prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "events_dead_lettered_total"),
			"Records sent to the dead-letter topic, by reason.", []string{"reason"}, topic)
		c.byReason = pc.DeadLetterByReason
	}
	return m.reg.Register(c)
}

// lagCollector exports consumer lag at scrape time.
type lagCollector struct {
	lag, assigned *prometheus.Desc
	read          func() map[int]int64
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.assigned
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	parts := c.read()
	for p, lag := range parts {
		if lag < 0 {
			continue // unknown: no fetch yet
		}
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(lag), strconv.Itoa(p))
	}
	ch <- prometheus.MustNewConstMetric(c.assigned, prometheus.GaugeValue, float64(len(parts)))
}

// RegisterLag registers streamprofile_consumer_lag{topic,partition} (high
// watermark minus position, in records) and
// streamprofile_consumer_assigned_partitions{topic}, read from assigned at
// scrape time: pass stream.Group.Assigned. Partitions no longer assigned
// disappear from the next scrape; a negative lag (unknown) is omitted.
func (m *Metrics) RegisterLag(topic string, assigned func() map[int]int64) error {
	if m == nil {
		return nil
	}
	if topic == "" || assigned == nil {
		return &FieldError{Field: "RegisterLag", Reason: "topic and assigned are required"}
	}
	labels := prometheus.Labels{"topic": topic}
	return m.reg.Register(&lagCollector{
		lag: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "consumer", "lag"),
			"Records between a partition's high watermark and this member's position in it.", []string{"partition"}, labels),
		assigned: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "consumer", "assigned_partitions"),
			"Partitions of the topic assigned to this member.", nil, labels),
		read: assigned,
	})
}
