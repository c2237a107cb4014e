package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/observability"
)

// speedFlag parses --speed: "max" or a positive multiple of real time.
type speedFlag struct{ v float64 }

func (s *speedFlag) String() string {
	if s.v == 0 {
		return "max"
	}
	return strconv.FormatFloat(s.v, 'g', -1, 64)
}

func (s *speedFlag) Set(v string) error {
	in := strings.ToLower(strings.TrimSpace(v))
	if in == "max" || in == "" {
		s.v = 0
		return nil
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(in, "x"), 64) // "60x" is 60
	if err != nil || !(f > 0) || math.IsInf(f, 0) {               // also refuses NaN
		return fmt.Errorf("speed %q: want max or a positive multiple of real time", v)
	}
	s.v = f
	return nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg app.DemoConfig
	fs := newFlags("demo", stderr)
	var speed speedFlag
	var brokers, redisAddr, logFormat, logLevel string
	fs.StringVar(&cfg.Data, "data", app.DefaultData, "dataset to replay: a file path or embedded:<name>")
	fs.StringVar(&cfg.Format, "format", "", "dataset format: jsonl, rees46 or cdnow (default: from the file name)")
	fs.Var(&speed, "speed", "replay speed: max, or a multiple of real time such as 60")
	fs.BoolVar(&cfg.ExitWhenDone, "exit-when-done", false, "exit once the replay is ingested")
	fs.StringVar(&cfg.ReportPath, "report", "", "write the JSON report to this file")
	fs.StringVar(&cfg.ProfilesOut, "profiles-out", "", "write every profile as JSON lines to this file")
	fs.IntVar(&cfg.Partitions, "partitions", 3, "partitions of the clickstream topic")
	fs.StringVar(&brokers, "brokers", "", "use this Kafka instead of the in-process one")
	fs.StringVar(&redisAddr, "redis", "", "use this Redis instead of starting one")
	fs.BoolVar(&cfg.InProcessRedis, "in-process-redis", false, "use the in-process Redis (miniredis) even when redis-server is on PATH")
	fs.StringVar(&cfg.Prefix, "prefix", "sp", "Redis key prefix")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "warn", "log level")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "localhost:8080", `listen address of the live dashboard ("" or "off" disables it)`)
	var tf telemetryFlags
	tf.register(fs, "off")
	fs.BoolVar(&cfg.NoTrain, "no-train", false, "do not run the trainer")
	fs.BoolVar(&cfg.NoScore, "no-score", false, "do not run the scorer (segments and triggers)")
	fs.StringVar(&cfg.SegmentsFile, "segments", "", "segment catalogue YAML (default: the built-in catalogue)")
	fs.DurationVar(&cfg.PurchaseHorizon, "horizon", 5*time.Minute, "purchase-propensity horizon: a purchase within this long after an event is a positive (the trainer's default is 30m; the bundled 3-hour sample has most events in its last 35 minutes, so 30m labels would mostly not mature before it ends)")
	fs.StringVar(&cfg.PseudonymKeyFile, "pseudonym-key-file", "", "file of HMAC keys for id pseudonyms (empty: ids stored as they are)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log
	cfg.Speed = speed.v
	cfg.Brokers = splitList(brokers)
	if redisAddr != "" {
		cfg.Redis = &app.RedisConfig{Addr: redisAddr}
	}
	cfg.Progress = stderr
	cfg.AdminAddr = tf.adminAddr
	// OTEL_* tracing: a trace per replayed record, through the pipeline.
	tp, shutdown, err := observability.SetupTracing(ctx, "streamprofile-demo")
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = shutdown(context.WithoutCancel(ctx)) }()
	cfg.Tracing = tp
	_, err = app.RunDemo(ctx, cfg)
	return err
}
