package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamprofile/streamprofile/app"
)

// configPath finds --config in args or STREAMPROFILE_CONFIG.
func configPath(args []string) string {
	for i, a := range args {
		for _, p := range []string{"--config=", "-config="} {
			if v, ok := strings.CutPrefix(a, p); ok {
				return v
			}
		}
		if (a == "--config" || a == "-config") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv("STREAMPROFILE_CONFIG")
}

// loadYAML decodes the optional config file into v, rejecting unknown keys.
func loadYAML(path string, v any) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && err != io.EOF {
		return usageError{fmt.Errorf("config %s: %w", path, err)}
	}
	return nil
}

// commonFlags are shared by the Kafka/Redis roles: brokers, Redis and
// logging.
type commonFlags struct {
	brokers, redisAddr, redisCluster, logFormat, logLevel string
}

// register declares the flags, their defaults taken from the config file's
// brokers and redis; redisHelp describes --redis.
func (c *commonFlags) register(fs *flag.FlagSet, brokers []string, redis app.RedisConfig, redisHelp string) {
	fs.StringVar(&c.brokers, "brokers", strings.Join(brokers, ","), "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&c.redisAddr, "redis", orDefault(redis.Addr, "127.0.0.1:6379"), redisHelp)
	fs.StringVar(&c.redisCluster, "redis-cluster", strings.Join(redis.Cluster, ","), "Redis Cluster seed addresses, comma-separated (overrides --redis)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// apply sets brokers and redis from the parsed flags and returns the
// logger they ask for.
func (c *commonFlags) apply(brokers *[]string, redis *app.RedisConfig, stderr io.Writer) (*slog.Logger, error) {
	*brokers = splitList(c.brokers)
	redis.Addr = c.redisAddr
	redis.Cluster = splitList(c.redisCluster)
	return newLogger(stderr, c.logFormat, c.logLevel)
}

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg app.IngestConfig
	fs := newFlags("ingest", stderr)
	var config string
	fs.StringVar(&config, "config", "", "optional YAML config file (flags and STREAMPROFILE_* env override it)")
	if err := loadYAML(configPath(args), &cfg); err != nil {
		return err
	}
	var c commonFlags
	c.register(fs, cfg.Brokers, cfg.Redis, "Redis address (standalone)")
	var tf telemetryFlags
	tf.register(fs, ":9090")
	fs.StringVar(&cfg.Group, "group", orDefault(cfg.Group, "streamprofile"), "Kafka consumer group")
	fs.BoolVar(&cfg.CreateTopics, "create-topics", cfg.CreateTopics, "create missing topics")
	fs.IntVar(&cfg.Partitions, "partitions", orInt(cfg.Partitions, 6), "partitions for created topics")
	fs.StringVar(&cfg.Pipeline.Topic, "topic", orDefault(cfg.Pipeline.Topic, "clickstream"), "clickstream topic")
	fs.StringVar(&cfg.SnapshotTopic, "snapshot-topic", orDefault(cfg.SnapshotTopic, "profile-examples"), "topic for per-event profile snapshots (\"-\" disables)")
	fs.StringVar(&cfg.PseudonymKeyFile, "pseudonym-key-file", cfg.PseudonymKeyFile, "file of HMAC keys for id pseudonyms (empty: ids stored as they are)")
	fs.BoolVar(&cfg.KeepPII, "keep-pii", cfg.KeepPII, "do not mask e-mail addresses, phone numbers and IP addresses in events")
	fs.StringVar(&cfg.Store.Prefix, "prefix", orDefault(cfg.Store.Prefix, "sp"), "Redis key prefix")
	fs.DurationVar(&cfg.Store.TTL, "ttl", orDur(cfg.Store.TTL, 30*24*time.Hour), "expire users inactive this long (negative: never)")
	fs.DurationVar(&cfg.Pipeline.FlushInterval, "flush-interval", orDur(cfg.Pipeline.FlushInterval, 20*time.Millisecond), "flush a partition when its oldest pending event is this old")
	fs.IntVar(&cfg.Pipeline.FlushEvents, "flush-events", orInt(cfg.Pipeline.FlushEvents, 1000), "flush a partition when this many events are pending")
	fs.DurationVar(&cfg.Pipeline.Features.AllowedLateness, "allowed-lateness", orDur(cfg.Pipeline.Features.AllowedLateness, 10*time.Minute), "accept events this far behind the partition's newest event time")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.apply(&cfg.Brokers, &cfg.Redis, stderr)
	if err != nil {
		return err
	}
	cfg.Logger = log
	tel, stopTelemetry, err := tf.setup(ctx, "streamprofile-ingest", cfg.Logger)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	cfg.Telemetry = tel
	in, err := app.NewIngester(cfg)
	if err != nil {
		return usageError{err}
	}
	defer in.Close()
	cfg.Logger.Info("ingest starting", "brokers", cfg.Brokers, "group", cfg.Group, "topic", in.Topology().Config().Topic)
	err = tel.Admin.Serve(ctx, in.Run)
	st := in.Topology().Stats()
	cfg.Logger.Info("ingest stopped", "consumed", st.Consumed.Load(), "applied", st.Applied.Load(),
		"dead_lettered", st.DeadLetter.Load(), "duplicates", st.Duplicates.Load(), "flushes", st.Flushes.Load())
	return err
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func orDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}
