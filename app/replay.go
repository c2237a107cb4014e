package app

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/streamprofile/streamprofile/internal/progress"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// ReplayConfig configures the replay role. Every field states its default.
type ReplayConfig struct {
	// Brokers of Kafka. Required.
	Brokers []string
	// Data path or embedded:<name>. Default the bundled REES46 sample.
	Data string
	// Format: jsonl, rees46 or cdnow. Default from the file name.
	Format string
	// Topic to publish to. Default "clickstream".
	Topic string
	// Speed: 0 max, else a multiple of real time. Default 0.
	Speed float64
	// Limit on records (0 all). Default 0.
	Limit int64
	// Until stops before this event time (zero: none).
	Until time.Time
	// CreateTopic creates Topic when missing, with Partitions. Default
	// false.
	CreateTopic bool
	// Partitions for a created topic. Default 6.
	Partitions int
	// Progress receives progress output. Default os.Stderr.
	Progress io.Writer
}

// RunReplay publishes a dataset to Kafka.
func RunReplay(ctx context.Context, cfg ReplayConfig) (stream.ReplayStats, error) {
	if len(cfg.Brokers) == 0 {
		return stream.ReplayStats{}, errors.New("replay: no Kafka brokers (set --brokers or STREAMPROFILE_BROKERS)")
	}
	if cfg.Data == "" {
		cfg.Data = DefaultData
	}
	if cfg.Topic == "" {
		cfg.Topic = "clickstream"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	if cfg.Progress == nil {
		cfg.Progress = os.Stderr
	}
	format := detectFormat(strings.TrimPrefix(cfg.Data, source.EmbeddedPrefix))
	if cfg.Format != "" {
		f, err := source.ParseFormat(cfg.Format)
		if err != nil {
			return stream.ReplayStats{}, err
		}
		format = f
	}
	rd, closer, err := source.Open(format, cfg.Data)
	if err != nil {
		return stream.ReplayStats{}, err
	}
	defer closer.Close()
	if cfg.CreateTopic {
		if err := stream.EnsureTopics(ctx, cfg.Brokers, stream.TopicSpec{Name: cfg.Topic, Partitions: cfg.Partitions}); err != nil {
			return stream.ReplayStats{}, err
		}
	}
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: cfg.Brokers})
	if err != nil {
		return stream.ReplayStats{}, err
	}
	defer p.Close()
	total := countRecords(format, cfg.Data)
	if cfg.Limit > 0 && cfg.Limit < total {
		total = cfg.Limit
	}
	bar := progress.New("replay", total, progress.Options{Out: cfg.Progress})
	var last int64
	st, err := stream.Replay(ctx, p, replaySource{rd}, stream.ReplayConfig{
		Topic: cfg.Topic, Speed: cfg.Speed, Limit: cfg.Limit, Until: cfg.Until,
		Progress: func(n int64) { bar.Add(n - last); last = n },
	})
	bar.Done()
	return st, err
}
