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
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/stream"
)

// RegistryConfig says where the model registry lives.
type RegistryConfig struct {
	// Dir stores the registry in a directory. Default "" (use Redis).
	Dir string `yaml:"dir"`
	// Redis says how to reach Redis when Dir is empty.
	Redis RedisConfig `yaml:"redis"`
	// Prefix of the registry's Redis keys. Default "sp".
	Prefix string `yaml:"prefix"`
	// Brokers, when set, receive version announcements on Topic.
	// Default none.
	Brokers []string `yaml:"brokers"`
	// Topic for announcements (compacted). Default "model-versions"; "-"
	// disables announcements.
	Topic string `yaml:"topic"`
	// Logger. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// openedRegistry is a registry with what must be closed after it.
type openedRegistry struct {
	reg     *registry.Registry
	closers []func() error
}

func (o *openedRegistry) Close() error {
	var errs []error
	for _, c := range o.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// OpenRegistry opens the registry cfg describes. Close the returned
// closer after use.
func OpenRegistry(cfg RegistryConfig) (*registry.Registry, interface{ Close() error }, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	o := &openedRegistry{}
	var backend registry.Backend
	if cfg.Dir != "" {
		b, err := registry.NewDirBackend(cfg.Dir)
		if err != nil {
			return nil, nil, err
		}
		backend = b
	} else {
		rdb := NewRedis(cfg.Redis)
		o.closers = append(o.closers, rdb.Close)
		b, err := registry.NewRedisBackend(registry.RedisBackendConfig{Client: rdb, Prefix: cfg.Prefix})
		if err != nil {
			o.Close()
			return nil, nil, err
		}
		backend = b
	}
	rcfg := registry.Config{Backend: backend, Topic: cfg.Topic, Logger: cfg.Logger}
	if len(cfg.Brokers) > 0 && cfg.Topic != "-" {
		p, err := stream.NewProducer(stream.ProducerConfig{Brokers: cfg.Brokers})
		if err != nil {
			o.Close()
			return nil, nil, err
		}
		o.closers = append(o.closers, p.Close)
		rcfg.Announce = p
	}
	if rcfg.Topic == "-" {
		rcfg.Topic = ""
	}
	reg, err := registry.New(rcfg)
	if err != nil {
		o.Close()
		return nil, nil, err
	}
	o.reg = reg
	return reg, o, nil
}

// TrainerConfig configures the train role.
type TrainerConfig struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string `yaml:"brokers"`
	// Group is the consumer group. Default "streamprofile-trainer".
	Group string `yaml:"group"`
	// Topic is the snapshot topic. Default "profile-examples".
	Topic string `yaml:"topic"`
	// Partitions is used when creating missing topics. Default 6.
	Partitions int `yaml:"partitions"`
	// CreateTopics creates the input topic and the compacted versions
	// topic when missing. Default false.
	CreateTopics bool `yaml:"create_topics"`
	// SessionTimeout is the consumer-group session timeout. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Registry says where versions go; Registry.Brokers defaults to
	// Brokers (announcements on).
	Registry RegistryConfig `yaml:"registry"`
	// Trainer configures learning (arch, horizons, gate, baselines).
	Trainer trainer.Config `yaml:"trainer"`
	// ShutdownTimeout bounds the final checkpoint. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Profiles is the profile store's Redis, where erasure receipts are
	// acknowledged; the trainer follows profile-erasures and forgets the
	// examples it holds for erased users. Default Registry.Redis.
	Profiles *RedisConfig `yaml:"profiles"`
	// Prefix of the profile store's keys. Default "sp".
	Prefix string `yaml:"prefix"`
	// ErasureTopic announces erasures. Default "profile-erasures".
	ErasureTopic string `yaml:"erasure_topic"`
	// Logger for operational logs. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// Validate reports invalid settings.
func (c *TrainerConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("train: no Kafka brokers (set --brokers or STREAMPROFILE_BROKERS)")
	}
	return c.Trainer.Validate()
}

// Trainer is the train role: a consumer group on the snapshot topic
// feeding a trainer.Trainer that cuts versions into the registry.
type Trainer struct {
	cfg    TrainerConfig
	reg    *registry.Registry
	closer interface{ Close() error }
	tr     *trainer.Trainer
	group  *stream.Group

	profiles redis.UniversalClient
	erasures *ErasureFollower
}

// NewTrainer connects the train role.
func NewTrainer(cfg TrainerConfig) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Group == "" {
		cfg.Group = "streamprofile-trainer"
	}
	if cfg.Topic == "" {
		cfg.Topic = pipeline.DefaultSnapshotTopic
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.Registry.Brokers == nil {
		cfg.Registry.Brokers = cfg.Brokers
	}
	if cfg.Registry.Topic == "" {
		cfg.Registry.Topic = registry.DefaultTopic
	}
	if cfg.Registry.Logger == nil {
		cfg.Registry.Logger = cfg.Logger
	}
	cfg.Trainer.Topic = cfg.Topic
	if cfg.Trainer.Logger == nil {
		cfg.Trainer.Logger = cfg.Logger
	}
	reg, closer, err := OpenRegistry(cfg.Registry)
	if err != nil {
		return nil, err
	}
	tr, err := trainer.New(cfg.Trainer, reg)
	if err != nil {
		closer.Close()
		return nil, err
	}
	group, err := stream.NewGroup(stream.GroupConfig{Brokers: cfg.Brokers, GroupID: cfg.Group, Topic: cfg.Topic,
		Logger: cfg.Logger, SessionTimeout: cfg.SessionTimeout}, tr.Factory())
	if err != nil {
		tr.Close()
		closer.Close()
		return nil, err
	}
	if cfg.ErasureTopic == "" {
		cfg.ErasureTopic = features.ErasureTopic
	}
	t := &Trainer{cfg: cfg, reg: reg, closer: closer, tr: tr, group: group}
	pcfg := cfg.Registry.Redis
	if cfg.Profiles != nil {
		pcfg = *cfg.Profiles
	}
	t.profiles = NewRedis(pcfg)
	store, err := features.NewStore(t.profiles, features.StoreConfig{Prefix: cfg.Prefix})
	if err != nil {
		t.profiles.Close()
		tr.Close()
		closer.Close()
		return nil, err
	}
	t.erasures = &ErasureFollower{Brokers: cfg.Brokers, Topic: cfg.ErasureTopic, Step: "trainer", Store: store, Logger: cfg.Logger,
		Forget: func(ctx context.Context, rec features.ErasureRecord) error {
			n := tr.Forget(rec.User, rec.RequestedAt)
			for _, l := range rec.Linked {
				n += tr.Forget(l, rec.RequestedAt)
			}
			cfg.Logger.Info("erasure: trainer dropped the user's examples", "receipt", rec.Receipt, "examples", n)
			return nil
		}}
	return t, nil
}

// Group returns the trainer's consumer group.
func (t *Trainer) Group() *stream.Group { return t.group }

// Registry returns the model registry.
func (t *Trainer) Registry() *registry.Registry { return t.reg }

// Stats returns the trainer's statistics (examples, positives, per-model
// prequential metrics, versions, promotions, rollbacks, examples/s,
// pending, dropped, the learning curve).
func (t *Trainer) Stats() trainer.Stats { return t.tr.Stats() }

// Learner returns the underlying trainer.
func (t *Trainer) Learner() *trainer.Trainer { return t.tr }

// Topics lists the topics the trainer reads or writes.
func (t *Trainer) Topics() []stream.TopicSpec {
	specs := []stream.TopicSpec{{Name: t.cfg.Topic, Partitions: t.cfg.Partitions}}
	if t.cfg.Registry.Topic != "-" {
		specs = append(specs, stream.TopicSpec{Name: t.cfg.Registry.Topic, Partitions: 1, Compacted: true})
	}
	return specs
}

// Run restores the latest checkpoint and trains until ctx is done, then
// cuts a final version.
func (t *Trainer) Run(ctx context.Context) error {
	if t.cfg.CreateTopics {
		if err := stream.EnsureTopics(ctx, t.cfg.Brokers, t.Topics()...); err != nil {
			return err
		}
	}
	if err := t.tr.Restore(ctx); err != nil {
		return fmt.Errorf("train: restore: %w", err)
	}
	if t.cfg.CreateTopics {
		if err := stream.EnsureTopics(ctx, t.cfg.Brokers, stream.TopicSpec{Name: t.cfg.ErasureTopic, Partitions: 1, Compacted: true}); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return t.erasures.Run(gctx) })
	g.Go(func() error {
		// Learn nothing before the known erasures are applied.
		select {
		case <-t.erasures.Ready():
		case <-gctx.Done():
			return nil
		}
		return t.group.Run(gctx)
	})
	runErr := g.Wait()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.ShutdownTimeout)
	defer cancel()
	_, cpErr := t.tr.Checkpoint(fctx)
	return errors.Join(runErr, cpErr)
}

// Close releases the network and connections. Call after Run returns.
func (t *Trainer) Close() error {
	return errors.Join(t.tr.Close(), t.closer.Close(), t.profiles.Close())
}
