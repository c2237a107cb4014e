package main

import (
	"context"
	"io"
	"time"

	"github.com/streamprofile/streamprofile/app"
)

func runScore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg app.ScoreConfig
	fs := newFlags("score", stderr)
	var config string
	fs.StringVar(&config, "config", "", "optional YAML config file (scorer, triggers, items; flags and STREAMPROFILE_* env override it)")
	if err := loadYAML(configPath(args), &cfg); err != nil {
		return err
	}
	var c commonFlags
	c.register(fs, cfg.Brokers, cfg.Redis, "Redis address of the profiles and the model registry (standalone)")
	fs.StringVar(&cfg.Registry.Dir, "registry-dir", cfg.Registry.Dir, "read the model registry from this directory instead of Redis")
	fs.StringVar(&cfg.Scorer.Prefix, "prefix", orDefault(cfg.Scorer.Prefix, "sp"), "Redis key prefix (the ingester's; also the registry's)")
	fs.StringVar(&cfg.Group, "group", orDefault(cfg.Group, "streamprofile-scorer"), "Kafka consumer group")
	fs.StringVar(&cfg.Scorer.Topic, "topic", orDefault(cfg.Scorer.Topic, "profile-examples"), "snapshot topic to score")
	fs.StringVar(&cfg.Scorer.ChangesTopic, "changes-topic", orDefault(cfg.Scorer.ChangesTopic, "segment-changes"), "topic of segment changes")
	fs.StringVar(&cfg.Scorer.RetargetTopic, "retarget-topic", orDefault(cfg.Scorer.RetargetTopic, "retarget"), "topic of retargeting triggers")
	fs.StringVar(&cfg.SegmentsFile, "segments", cfg.SegmentsFile, "segment catalogue file, hot-reloaded (default: the embedded catalogue)")
	fs.BoolVar(&cfg.CreateTopics, "create-topics", cfg.CreateTopics, "create missing topics")
	fs.IntVar(&cfg.Partitions, "partitions", orInt(cfg.Partitions, 6), "partitions for created topics")
	fs.DurationVar(&cfg.Scorer.Lateness, "lateness", orDur(cfg.Scorer.Lateness, 10*time.Minute), "event-time timers fire this long after the newest snapshot time passes them (the ingester's allowed lateness)")
	fs.DurationVar(&cfg.Scorer.IdleAfter, "idle-after", orDur(cfg.Scorer.IdleAfter, 30*time.Second), "an idle partition's clock follows wall time after this long without records")
	var tf telemetryFlags
	tf.register(fs, ":9090")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.apply(&cfg.Brokers, &cfg.Redis, stderr)
	if err != nil {
		return err
	}
	cfg.Logger = log
	tel, stopTelemetry, err := tf.setup(ctx, "streamprofile-score", log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	cfg.Telemetry = tel
	s, err := app.NewScorer(cfg)
	if err != nil {
		return usageError{err}
	}
	defer s.Close()
	log.Info("score starting", "brokers", cfg.Brokers, "group", cfg.Group, "topic", s.Core().Config().Topic,
		"segments", s.Core().Catalogue().File())
	err = app.ServeScorer(ctx, s, tel.Admin)
	st := s.Stats()
	log.Info("score stopped", "snapshots", st.Snapshots, "timers", st.Timers, "emitted", st.Emitted,
		"triggers", st.Triggers, "suppressed", st.SuppressedTotal(), "model_version", st.ModelVersion,
		"change_latency_p50", st.ChangeLatency.P50, "change_latency_p99", st.ChangeLatency.P99)
	return err
}
