package main

import (
	"context"
	"io"
	"time"

	"github.com/streamprofile/streamprofile/app"
)

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg app.TrainerConfig
	fs := newFlags("train", stderr)
	var config string
	fs.StringVar(&config, "config", "", "optional YAML config file (trainer arch, horizons, gate; flags and STREAMPROFILE_* env override it)")
	if err := loadYAML(configPath(args), &cfg); err != nil {
		return err
	}
	var c commonFlags
	c.register(fs, cfg.Brokers, cfg.Registry.Redis, "Redis address of the model registry (standalone)")
	fs.StringVar(&cfg.Registry.Dir, "registry-dir", cfg.Registry.Dir, "store the model registry in this directory instead of Redis")
	fs.StringVar(&cfg.Registry.Prefix, "prefix", orDefault(cfg.Registry.Prefix, "sp"), "Redis key prefix of the registry")
	fs.StringVar(&cfg.Group, "group", orDefault(cfg.Group, "streamprofile-trainer"), "Kafka consumer group")
	fs.StringVar(&cfg.Topic, "topic", orDefault(cfg.Topic, "profile-examples"), "snapshot topic to learn from")
	fs.StringVar(&cfg.Registry.Topic, "versions-topic", orDefault(cfg.Registry.Topic, "model-versions"), "compacted topic announcing versions (\"-\" disables)")
	fs.BoolVar(&cfg.CreateTopics, "create-topics", cfg.CreateTopics, "create missing topics")
	fs.IntVar(&cfg.Partitions, "partitions", orInt(cfg.Partitions, 6), "partitions for created topics")
	fs.DurationVar(&cfg.Trainer.PurchaseHorizon, "purchase-horizon", orDur(cfg.Trainer.PurchaseHorizon, 30*time.Minute), "purchase_propensity horizon")
	fs.DurationVar(&cfg.Trainer.RepeatHorizon, "repeat-horizon", orDur(cfg.Trainer.RepeatHorizon, 90*24*time.Hour), "repeat_purchase_90d horizon")
	fs.DurationVar(&cfg.Trainer.AllowedLateness, "allowed-lateness", orDur(cfg.Trainer.AllowedLateness, 10*time.Minute), "the ingester's allowed lateness (labels mature this much after their horizon)")
	var tf telemetryFlags
	tf.register(fs, ":9090")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.apply(&cfg.Brokers, &cfg.Registry.Redis, stderr)
	if err != nil {
		return err
	}
	cfg.Logger = log
	tel, stopTelemetry, err := tf.setup(ctx, "streamprofile-train", log)
	if err != nil {
		return err
	}
	defer stopTelemetry()
	t, err := app.NewTrainer(cfg)
	if err != nil {
		return usageError{err}
	}
	defer t.Close()
	log.Info("train starting", "brokers", cfg.Brokers, "group", cfg.Group, "topic", cfg.Topic)
	err = app.ServeTrainer(ctx, t, tel.Admin)
	st := t.Stats()
	log.Info("train stopped", "snapshots", st.Snapshots, "versions", st.Versions, "promotions", st.Promotions,
		"rollbacks", st.Rollbacks, "pending", st.Pending, "dropped", st.Dropped, "examples_per_second", st.ExamplesPerSecond)
	return err
}
