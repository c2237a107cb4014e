package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/sink/scorer"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// ScoreConfig configures the score role.
type ScoreConfig struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string `yaml:"brokers"`
	// Group is the consumer group. Default "streamprofile-scorer".
	Group string `yaml:"group"`
	// Partitions is used when creating missing topics. Default 6.
	Partitions int `yaml:"partitions"`
	// CreateTopics creates the snapshot, output and erasure topics when
	// missing. Default false.
	CreateTopics bool `yaml:"create_topics"`
	// SessionTimeout is the consumer-group session timeout. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Redis says how to reach the profile Redis (the ingester's).
	Redis RedisConfig `yaml:"redis"`
	// Registry says where the model registry lives; an empty
	// Registry.Redis and Registry.Dir use Redis. Registry.Prefix defaults
	// to Scorer.Prefix.
	Registry RegistryConfig `yaml:"registry"`
	// RegistryInterval is how often the registry's champion is polled.
	// Default 1s.
	RegistryInterval time.Duration `yaml:"registry_interval"`
	// SegmentsFile is a segment catalogue, hot-reloaded on change. Default
	// "" (the embedded default catalogue).
	SegmentsFile string `yaml:"segments_file"`
	// SegmentsInterval is how often SegmentsFile is polled. Default 2s.
	SegmentsInterval time.Duration `yaml:"segments_interval"`
	// ErasureTopic announces erasures. Default "profile-erasures".
	ErasureTopic string `yaml:"erasure_topic"`
	// DisableErasures stops following ErasureTopic. Default false: erased
	// users are forgotten and their receipts acknowledged (step "scorer").
	DisableErasures bool `yaml:"disable_erasures"`
	// Scorer configures scoring, segments and triggers (Group and Logger
	// are set from this config).
	Scorer scorer.Config `yaml:"scorer"`
	// MembersInterval is how often segment member counts are read for
	// Stats. Default 5s.
	MembersInterval time.Duration `yaml:"members_interval"`
	// Telemetry traces the snapshots into the changes and triggers they
	// cause (Scorer.Tracer) and observes their end-to-end latency on
	// Telemetry.Admin's metrics (Scorer.Metrics); InstrumentScorer adds
	// the rest of the role's metrics and its readiness checks. Default:
	// off.
	Telemetry Telemetry `yaml:"-"`
	// Logger for operational logs. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate reports invalid settings.
func (c *ScoreConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("score: no Kafka brokers (set --brokers or STREAMPROFILE_BROKERS)")
	}
	return c.Scorer.Validate()
}

// Scorer is the score role: a consumer group on the snapshot topic feeding
// a scorer.Scorer, with the champion followed in the registry, the segment
// catalogue hot-reloaded and erasures followed.
type Scorer struct {
	cfg      ScoreConfig
	rdb      redis.UniversalClient
	producer *stream.Producer
	closer   interface{ Close() error }
	champion *registry.Champion
	watcher  *registry.Watcher
	segments *segment.Watcher
	core     *scorer.Scorer
	group    *stream.Group
	erasures *ErasureFollower
}

// NewScorer connects the score role.
func NewScorer(cfg ScoreConfig) (*Scorer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Group == "" {
		cfg.Group = scorer.DefaultGroup
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	if cfg.RegistryInterval <= 0 {
		cfg.RegistryInterval = time.Second
	}
	if cfg.MembersInterval <= 0 {
		cfg.MembersInterval = 5 * time.Second
	}
	if cfg.ErasureTopic == "" {
		cfg.ErasureTopic = features.ErasureTopic
	}
	sc := cfg.Scorer.WithDefaults()
	sc.Group, sc.Logger = cfg.Group, cfg.Logger
	sc.Tracer = cfg.Telemetry.Tracer(cfg.Group)
	sc.Metrics = cfg.Telemetry.Admin.Metrics()
	if cfg.Registry.Dir == "" && cfg.Registry.Redis.Addr == "" && len(cfg.Registry.Redis.Cluster) == 0 {
		cfg.Registry.Redis = cfg.Redis
	}
	if cfg.Registry.Prefix == "" {
		cfg.Registry.Prefix = sc.Prefix
	}
	cfg.Registry.Topic = "-" // the scorer only reads the registry
	cfg.Registry.Brokers = nil
	if cfg.Registry.Logger == nil {
		cfg.Registry.Logger = cfg.Logger
	}
	s := &Scorer{cfg: cfg, champion: &registry.Champion{}}
	sc.Champion = s.champion
	fail := func(err error) (*Scorer, error) {
		s.Close()
		return nil, err
	}
	reg, closer, err := OpenRegistry(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s.closer = closer
	if s.watcher, err = registry.NewWatcher(registry.WatcherConfig{Registry: reg, Holder: s.champion,
		Interval: cfg.RegistryInterval, Logger: cfg.Logger,
		OnSwap: func(sv *registry.Served) {
			cfg.Logger.Info("score: champion loaded", "version", sv.Version.Number)
		}}); err != nil {
		return fail(err)
	}
	if cfg.SegmentsFile != "" {
		s.segments, err = segment.NewWatcher(segment.WatcherConfig{Path: cfg.SegmentsFile, Interval: cfg.SegmentsInterval,
			OnChange: func(c *segment.Catalogue) {
				cfg.Logger.Info("score: segment catalogue reloaded", "file", c.File(), "segments", c.Len(), "digest", c.Digest())
			},
			OnError: func(err error) {
				cfg.Logger.Warn("score: segment catalogue edit rejected; the previous one stays in force", "err", err)
			}})
		if err != nil {
			return fail(err)
		}
		sc.Catalogue = s.segments.Current
	}
	s.rdb = NewRedis(cfg.Redis)
	if s.producer, err = stream.NewProducer(stream.ProducerConfig{Brokers: cfg.Brokers}); err != nil {
		return fail(err)
	}
	if s.core, err = scorer.New(sc, s.rdb, s.producer); err != nil {
		return fail(err)
	}
	if s.group, err = stream.NewGroup(stream.GroupConfig{Brokers: cfg.Brokers, GroupID: cfg.Group, Topic: sc.Topic,
		Logger: cfg.Logger, SessionTimeout: cfg.SessionTimeout}, s.core.Factory()); err != nil {
		return fail(err)
	}
	if !cfg.DisableErasures {
		store, err := features.NewStore(s.rdb, features.StoreConfig{Prefix: sc.Prefix})
		if err != nil {
			return fail(err)
		}
		s.erasures = &ErasureFollower{Brokers: cfg.Brokers, Topic: cfg.ErasureTopic, Step: scorer.ErasureStep, Instance: cfg.Group, Store: store,
			Logger: cfg.Logger, Forget: func(ctx context.Context, rec features.ErasureRecord) error {
				return s.core.Forget(ctx, append([]string{rec.User}, rec.Linked...), 30*time.Second)
			}}
	}
	return s, nil
}

// Core returns the scorer.
func (s *Scorer) Core() *scorer.Scorer { return s.core }

// Group returns the consumer group.
func (s *Scorer) Group() *stream.Group { return s.group }

// Champion returns the holder of the champion in use.
func (s *Scorer) Champion() *registry.Champion { return s.champion }

// Stats returns the scorer's statistics: per segment members, enters and
// exits; triggers per kind; suppressed triggers per reason and kind;
// ingest → emit latency quantiles.
func (s *Scorer) Stats() scorer.Stats { return s.core.Stats() }

// Topics lists the topics the scorer reads and writes.
func (s *Scorer) Topics() []stream.TopicSpec {
	specs := s.core.Topics(s.cfg.Partitions)
	if !s.cfg.DisableErasures {
		specs = append(specs, stream.TopicSpec{Name: s.cfg.ErasureTopic, Partitions: 1, Compacted: true})
	}
	return specs
}

// Run scores until ctx is done.
func (s *Scorer) Run(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("score: redis: %w", err)
	}
	if s.cfg.CreateTopics {
		if err := stream.EnsureTopics(ctx, s.cfg.Brokers, s.Topics()...); err != nil {
			return err
		}
	}
	if err := s.watcher.Refresh(ctx); err != nil && !errors.Is(err, registry.ErrNoChampion) {
		s.cfg.Logger.Warn("score: loading the champion failed; scoring without a model until it loads", "err", err)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(rctx)
	g.Go(func() error {
		defer stop()
		if s.erasures != nil {
			// Score nobody before the known erasures are applied.
			select {
			case <-s.erasures.Ready():
			case <-gctx.Done():
				return nil
			}
		}
		return s.group.Run(gctx)
	})
	g.Go(func() error { return s.watcher.Run(gctx) })
	if s.segments != nil {
		g.Go(func() error { return s.segments.Run(gctx) })
	}
	if s.erasures != nil {
		g.Go(func() error { return s.erasures.Run(gctx) })
	}
	g.Go(func() error {
		t := time.NewTicker(s.cfg.MembersInterval)
		defer t.Stop()
		for {
			if err := s.core.RefreshMembers(gctx); err != nil && gctx.Err() == nil {
				s.cfg.Logger.Debug("score: reading segment sizes failed", "err", err)
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	err := g.Wait()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.core.RefreshMembers(fctx)
	return err
}

// Close releases connections. Call after Run returns.
func (s *Scorer) Close() error {
	var errs []error
	if s.producer != nil {
		errs = append(errs, s.producer.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.closer != nil {
		errs = append(errs, s.closer.Close())
	}
	return errors.Join(errs...)
}
