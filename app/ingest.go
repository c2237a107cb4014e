package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/privacy"
	"github.com/streamprofile/streamprofile/stream"
)

// RedisConfig says how to reach Redis. Exactly one of Addr and Cluster is
// used; Cluster wins when set.
type RedisConfig struct {
	// Addr of a standalone server. Default "127.0.0.1:6379".
	Addr string `yaml:"addr"`
	// Cluster seed addresses of a Redis Cluster. Default none.
	Cluster []string `yaml:"cluster"`
	// Password for AUTH. Default none.
	Password string `yaml:"password"`
	// DB is the database number of a standalone server. Default 0.
	DB int `yaml:"db"`
	// Timeout for dial, read and write. Default 3s.
	Timeout time.Duration `yaml:"timeout"`
}

// NewRedis returns a client for cfg.
func NewRedis(cfg RedisConfig) redis.UniversalClient {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if len(cfg.Cluster) > 0 {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.Cluster, Password: cfg.Password,
			DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
		})
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:6379"
	}
	return redis.NewClient(&redis.Options{
		Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB,
		DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
	})
}

// IngestConfig configures the ingest role.
type IngestConfig struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string `yaml:"brokers"`
	// Group is the consumer group. Default "streamprofile".
	Group string `yaml:"group"`
	// Partitions is used when creating missing topics. Default 6.
	Partitions int `yaml:"partitions"`
	// CreateTopics creates the topology's topics when missing. Default
	// false (production topics are provisioned by their owners).
	CreateTopics bool `yaml:"create_topics"`
	// SessionTimeout is the consumer-group session timeout: how long a
	// crashed member holds its partitions. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Redis says how to reach Redis.
	Redis RedisConfig `yaml:"redis"`
	// Store is the Redis layout.
	Store features.StoreConfig `yaml:"store"`
	// Pipeline is the processing topology.
	Pipeline pipeline.Config `yaml:"pipeline"`
	// SnapshotTopic receives a profile snapshot per applied event (the
	// trainer's examples and the scorer's input). Default
	// "profile-examples"; "-" disables snapshots.
	SnapshotTopic string `yaml:"snapshot_topic"`
	// PseudonymKeyFile holds the HMAC keys of the id pseudonyms (see
	// package privacy); empty keeps ids as they are. Default none.
	PseudonymKeyFile string `yaml:"pseudonym_key_file"`
	// KeepPII disables masking of e-mail addresses, phone numbers and IP
	// addresses in events. Default false (masking on).
	KeepPII bool `yaml:"keep_pii"`
	// Telemetry traces the records and receives the metrics and the
	// readiness checks (caught up, Redis reachable). Default: off.
	Telemetry Telemetry `yaml:"-"`
	// Logger for operational logs. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// piiMasker adapts privacy.Masker to pipeline.Masker.
type piiMasker struct{ m *privacy.Masker }

func (a piiMasker) DropPII(ev *stream.Event) bool         { return a.m.DropPII(ev).Found() }
func (a piiMasker) MaskPayload(raw []byte) ([]byte, bool) { return a.m.MaskPayload(raw) }

// Privacy builds the pseudonymizer (nil when no key file is configured) and
// the PII masker (nil when KeepPII) of the configuration.
func Privacy(keyFile string, keepPII bool) (*privacy.Pseudonymizer, pipeline.Masker, error) {
	var ps *privacy.Pseudonymizer
	if keyFile != "" {
		keys, err := privacy.LoadKeyFile(keyFile)
		if err != nil {
			return nil, nil, err
		}
		if ps, err = privacy.New(keys); err != nil {
			return nil, nil, err
		}
	}
	if keepPII {
		return ps, nil, nil
	}
	m, err := privacy.NewMasker(privacy.MaskerConfig{})
	if err != nil {
		return nil, nil, err
	}
	return ps, piiMasker{m}, nil
}

// Validate reports invalid settings.
func (c *IngestConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("ingest: no Kafka brokers (set --brokers or STREAMPROFILE_BROKERS)")
	}
	if err := c.Store.Validate(); err != nil {
		return err
	}
	return c.Pipeline.Validate()
}

// Ingester consumes the clickstream into the feature store.
type Ingester struct {
	cfg      IngestConfig
	rdb      redis.UniversalClient
	store    *features.Store
	producer *stream.Producer
	topo     *pipeline.Topology
	group    *stream.Group
}

// NewIngester connects the ingest role. stages extend the topology.
func NewIngester(cfg IngestConfig, stages ...pipeline.Stage) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Group == "" {
		cfg.Group = "streamprofile"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	cfg.Store.Group = cfg.Group
	ps, masker, err := Privacy(cfg.PseudonymKeyFile, cfg.KeepPII)
	if err != nil {
		return nil, err
	}
	if ps != nil {
		cfg.Pipeline.Pseudonyms = ps
	}
	cfg.Pipeline.Masker = masker
	cfg.Pipeline.Tracer = cfg.Telemetry.Tracer(cfg.Group)
	cfg.Pipeline.Metrics = cfg.Telemetry.Admin.Metrics()
	rdb := NewRedis(cfg.Redis)
	store, err := features.NewStore(rdb, cfg.Store)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	producer, err := stream.NewProducer(stream.ProducerConfig{Brokers: cfg.Brokers})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	if cfg.SnapshotTopic == "" {
		cfg.SnapshotTopic = pipeline.DefaultSnapshotTopic
	}
	if cfg.SnapshotTopic != "-" {
		stages = append([]pipeline.Stage{&pipeline.SnapshotStage{Topic: cfg.SnapshotTopic, Features: cfg.Pipeline.Features}}, stages...)
	}
	topo, err := pipeline.New(cfg.Pipeline, store, producer, stages...)
	if err != nil {
		rdb.Close()
		producer.Close()
		return nil, err
	}
	group, err := stream.NewGroup(stream.GroupConfig{
		Brokers: cfg.Brokers, GroupID: cfg.Group, Topic: topo.Config().Topic, Logger: cfg.Logger,
		SessionTimeout: cfg.SessionTimeout,
	}, topo.Factory())
	if err == nil {
		err = instrumentIngest(cfg.Telemetry.Admin, topo, group, rdb)
	}
	if err != nil {
		rdb.Close()
		producer.Close()
		return nil, err
	}
	return &Ingester{cfg: cfg, rdb: rdb, store: store, producer: producer, topo: topo, group: group}, nil
}

// instrumentIngest exports the topology's counters and the group's lag to
// a's metrics and adds the ingest role's readiness checks.
func instrumentIngest(a *Admin, topo *pipeline.Topology, group *stream.Group, rdb redis.UniversalClient) error {
	if a == nil {
		return nil
	}
	st, topic := topo.Stats(), topo.Config().Topic
	if err := a.Metrics().RegisterPipeline(observability.PipelineCounters{
		Topic: topic, Consumed: st.Consumed.Load, Valid: st.Valid.Load, Applied: st.Applied.Load,
		Duplicates: st.Duplicates.Load, DeadLetterByReason: observability.StringKeys(st.DeadLetterByReason),
	}); err != nil {
		return fmt.Errorf("ingest: metrics: %w", err)
	}
	if err := a.Metrics().RegisterLag(topic, group.Assigned); err != nil {
		return fmt.Errorf("ingest: metrics: %w", err)
	}
	a.AddCheck(GroupCaughtUp("partitions", group, a.Config().MaxLag))
	a.AddCheck(RedisReachable("redis", rdb))
	return nil
}

// Store returns the feature store.
func (in *Ingester) Store() *features.Store { return in.store }

// Topology returns the processing topology.
func (in *Ingester) Topology() *pipeline.Topology { return in.topo }

// Group returns the consumer group.
func (in *Ingester) Group() *stream.Group { return in.group }

// Run consumes until ctx is done.
func (in *Ingester) Run(ctx context.Context) error {
	if err := in.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ingest: redis: %w", err)
	}
	if in.cfg.CreateTopics {
		if err := stream.EnsureTopics(ctx, in.cfg.Brokers, in.Topics()...); err != nil {
			return err
		}
	}
	return in.group.Run(ctx)
}

// Topics lists every topic the ingester reads or writes.
func (in *Ingester) Topics() []stream.TopicSpec {
	t := in.topo.Topics(in.cfg.Partitions)
	if in.cfg.SnapshotTopic != "-" {
		t = append(t, stream.TopicSpec{Name: in.cfg.SnapshotTopic, Partitions: in.cfg.Partitions})
	}
	return t
}

// Close releases connections. Call after Run returns.
func (in *Ingester) Close() error {
	return errors.Join(in.producer.Close(), in.rdb.Close())
}
