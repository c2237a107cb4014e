package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/stream"
)

// Config configures the ingest topology. Every field states its default.
type Config struct {
	// Topic is the clickstream topic. Default "clickstream".
	Topic string `yaml:"topic"`
	// DLQTopic receives bad and late records. Default "clickstream.dlq".
	DLQTopic string `yaml:"dlq_topic"`
	// FlushEvents flushes a partition once this many events are pending.
	// Default 1000.
	FlushEvents int `yaml:"flush_events"`
	// FlushInterval flushes a partition once its oldest unflushed record is
	// this old: the bound on how long an event takes to become durable.
	// Default 20ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxBatch is the most queued messages processed in one step (one
	// Redis load round trip). Default 512.
	MaxBatch int `yaml:"max_batch"`
	// CacheUsers bounds the users cached per partition. Default 100000.
	CacheUsers int `yaml:"cache_users"`
	// ShutdownTimeout bounds the step under way and the final flush when a
	// partition is revoked or the process stops. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Limits bound valid events; see stream.Limits for defaults.
	Limits stream.Limits `yaml:"limits"`
	// Features defines the features; see features.Config for defaults.
	Features features.Config `yaml:"features"`
	// Now is the clock for the far-future check. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Pseudonyms turns user and anonymous ids into the ids profiles are
	// stored and published under. Default none: ids are used as they are.
	Pseudonyms Pseudonymizer `yaml:"-"`
	// Masker removes personal data (e-mail addresses, phone numbers, IP
	// addresses) from events before they are used, and from dead-lettered
	// bytes. Default none.
	Masker Masker `yaml:"-"`
	// Tracer traces every record (consume span, steps, emit spans whose
	// context goes into every record produced, redis_flush spans). Default
	// nil: tracing off, at no cost.
	Tracer *observability.Tracer `yaml:"-"`
	// Metrics receives the end-to-end latencies and flush sizes. Default
	// nil: none. The counters of Stats are exported by the caller
	// (observability.Metrics.RegisterPipeline).
	Metrics *observability.Metrics `yaml:"-"`
}

// Pseudonymizer maps a raw id to its stored pseudonym (privacy.Pseudonymizer).
type Pseudonymizer interface {
	Pseudonym(id string) string
}

// Masker removes personal data (privacy.Masker).
type Masker interface {
	// DropPII masks or drops personal data in the event's fields in place
	// and reports whether there was any.
	DropPII(ev *stream.Event) bool
	// MaskPayload masks personal data in raw bytes (JSON or text).
	MaskPayload(raw []byte) ([]byte, bool)
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Topic == "" {
		c.Topic = "clickstream"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = c.Topic + ".dlq"
	}
	if c.FlushEvents <= 0 {
		c.FlushEvents = 1000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 20 * time.Millisecond
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.CacheUsers <= 0 {
		c.CacheUsers = 100000
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	c.Features = c.Features.WithDefaults()
	return c
}

// Validate reports invalid settings.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Topic == c.DLQTopic {
		return errors.New("pipeline: dlq_topic must differ from topic")
	}
	return c.Features.Validate()
}

// Stage extends the topology after the feature update (training examples,
// scoring). A Stage creates one PartitionStage per assigned partition.
type Stage interface {
	Partition(ctx context.Context, p stream.Partition) (PartitionStage, error)
}

// StageEvent is an applied event with the user's updated state.
type StageEvent struct {
	Msg       *kafka.Message
	Event     *stream.Event
	User      string
	State     *features.State
	Watermark int64
}

// StageOutputs is implemented by a Stage whose records should be named in
// traces and latency metrics (observability.Output*, e.g. "trigger"): it
// maps each topic the stage writes to its output name. Records of other
// topics are named after their topic.
type StageOutputs interface {
	Outputs() map[string]string
}

// PartitionStage sees every applied event of its partition in offset order,
// on the processor's goroutine; of a user whose profiling consent is
// withdrawn, only consent events (the state then holds no derived
// feature). Messages it appends to out are sent, and
// acknowledged, before the flush that covers the event is written.
type PartitionStage interface {
	Event(e *StageEvent, out []kafka.Message) []kafka.Message
	// Flushed is called after a flush is durable.
	Flushed()
}

// Topology is the ingest topology: clickstream → features in Redis.
type Topology struct {
	cfg     Config
	store   StateStore
	sender  Sender
	decoder *stream.Decoder
	stats   *Stats
	stages  []Stage
	outputs map[string]string // topic → output name of emitted records
	ttl     time.Duration     // of stored user states; ≤ 0: they do not expire
}

// freshUntil returns until when a cached state written at written (zero:
// loaded, write time unknown) certainly still matches the store: a tenth of
// the TTL early, for clock drift between the processor and Redis.
func (t *Topology) freshUntil(written time.Time) time.Time {
	switch {
	case t.ttl <= 0:
		return time.Unix(1<<62, 0)
	case written.IsZero():
		return time.Time{}
	}
	return written.Add(t.ttl - t.ttl/10)
}

// New returns the topology.
func New(cfg Config, store StateStore, sender Sender, stages ...Stage) (*Topology, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || sender == nil {
		return nil, errors.New("pipeline: store and sender are required")
	}
	cfg = cfg.WithDefaults()
	var ttl time.Duration
	if es, ok := store.(ExpiringStore); ok {
		ttl = es.StateTTL()
	}
	outputs := map[string]string{cfg.DLQTopic: observability.OutputDeadLetter, cfg.Topic: OutputInternal}
	for _, s := range stages {
		if so, ok := s.(StageOutputs); ok {
			maps.Copy(outputs, so.Outputs())
		}
	}
	return &Topology{
		outputs: outputs,
		ttl:     ttl,
		cfg:     cfg,
		store:   store,
		sender:  sender,
		decoder: stream.NewDecoder(cfg.Limits, cfg.Now),
		stats:   newStats(),
		stages:  stages,
	}, nil
}

// OutputInternal names, in traces and latency metrics, the records the
// topology writes back to its own topic: forwarded identify and anonymous
// events, and profile merge records.
const OutputInternal = "internal"

// output names the kind of an emitted record.
func (t *Topology) output(m *kafka.Message) string {
	if name, ok := t.outputs[m.Topic]; ok {
		return name
	}
	return m.Topic
}

// Config returns the effective configuration.
func (t *Topology) Config() Config { return t.cfg }

// Stats returns the live counters.
func (t *Topology) Stats() *Stats { return t.stats }

// Topics lists the topics the topology reads and writes.
func (t *Topology) Topics(partitions int) []stream.TopicSpec {
	return []stream.TopicSpec{
		{Name: t.cfg.Topic, Partitions: partitions},
		{Name: t.cfg.DLQTopic, Partitions: partitions},
	}
}

// Factory returns the processor factory for stream.NewGroup.
func (t *Topology) Factory() stream.ProcessorFactory {
	return func(p stream.Partition) (stream.Processor, error) {
		if p.Topic != t.cfg.Topic {
			return nil, fmt.Errorf("pipeline: unexpected topic %q", p.Topic)
		}
		return newProcessor(t, p), nil
	}
}

// Stats are the topology's counters, safe for concurrent reads.
type Stats struct {
	Consumed   atomic.Int64 // messages read
	Valid      atomic.Int64 // messages that decoded and validated
	Applied    atomic.Int64 // events applied to features
	Duplicates atomic.Int64 // events dropped as duplicate event ids
	Replayed   atomic.Int64 // events skipped because a previous run had applied them
	Suppressed atomic.Int64 // events not used: the user withdrew profiling consent
	Erased     atomic.Int64 // events not used: the user was erased
	Forwarded  atomic.Int64 // anonymous events forwarded to their merged profile
	Merges     atomic.Int64 // anonymous profiles handed over to a user
	PIIMasked  atomic.Int64 // events that carried personal data, masked before use
	// IdentityConflicts counts identify events naming a second user for an
	// anonymous id already merged (the first link wins).
	IdentityConflicts atomic.Int64
	DeadLetter        atomic.Int64 // records sent to the DLQ
	Emitted           atomic.Int64 // records produced (DLQ and stages)
	Flushes           atomic.Int64 // Redis flushes
	FlushUsers        atomic.Int64 // user states written
	RedisCmds         atomic.Int64 // commands sent in flushes
	RedisLoads        atomic.Int64 // load round trips
	FlushNanos        atomic.Int64 // total flush time

	mu       sync.Mutex
	byReason map[stream.Reason]int64
}

func newStats() *Stats { return &Stats{byReason: map[stream.Reason]int64{}} }

func (s *Stats) deadLettered(r stream.Reason) {
	s.DeadLetter.Add(1)
	s.mu.Lock()
	s.byReason[r]++
	s.mu.Unlock()
}

func (s *Stats) flushed(st features.FlushStats, events int) {
	s.Flushes.Add(1)
	s.FlushUsers.Add(int64(st.Users))
	s.RedisCmds.Add(int64(st.Commands))
	s.FlushNanos.Add(int64(st.Duration))
}

// DeadLetterByReason returns the DLQ counts per reason.
func (s *Stats) DeadLetterByReason() map[stream.Reason]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[stream.Reason]int64, len(s.byReason))
	for k, v := range s.byReason {
		out[k] = v
	}
	return out
}

// RoundTrips is the number of Redis round trips made by processors.
func (s *Stats) RoundTrips() int64 { return s.Flushes.Load() + s.RedisLoads.Load() }
