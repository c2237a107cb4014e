package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/observability"
)

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg app.ReplayConfig
	fs := newFlags("replay", stderr)
	var speed speedFlag
	var brokers, until string
	fs.StringVar(&brokers, "brokers", "", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&cfg.Data, "data", app.DefaultData, "dataset: a file path or embedded:<name>")
	fs.StringVar(&cfg.Format, "format", "", "jsonl, rees46 or cdnow (default: from the file name)")
	fs.StringVar(&cfg.Topic, "topic", "clickstream", "topic to publish to")
	fs.Var(&speed, "speed", "max, or a multiple of real time such as 60")
	fs.Int64Var(&cfg.Limit, "limit", 0, "stop after this many records (0: all)")
	fs.StringVar(&until, "until", "", "stop before the first event at or after this RFC 3339 time or date")
	fs.BoolVar(&cfg.SortByTime, "sort-by-time", false, "replay in event-time order instead of file order (always for cdnow)")
	fs.BoolVar(&cfg.CreateTopic, "create-topic", false, "create the topic when missing")
	fs.IntVar(&cfg.Partitions, "partitions", 6, "partitions when creating the topic")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.Brokers = splitList(brokers)
	cfg.Speed = speed.v
	if until != "" {
		t, err := time.Parse(time.RFC3339, until)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, until); err != nil {
				return usageError{fmt.Errorf("--until %q: want RFC 3339 or YYYY-MM-DD", until)}
			}
		}
		cfg.Until = t
	}
	cfg.Progress = stderr
	// OTEL_* tracing: a trace per replayed record, continued by ingest.
	tp, shutdown, err := observability.SetupTracing(ctx, "streamprofile-replay")
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = shutdown(context.WithoutCancel(ctx)) }()
	cfg.Tracing = tp
	st, err := app.RunReplay(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published %d records (%d skipped) in %s, event time %s → %s\n", st.Published, st.Skipped,
		st.Wall.Round(time.Millisecond), st.First.UTC().Format(time.RFC3339), st.Last.UTC().Format(time.RFC3339))
	return nil
}
