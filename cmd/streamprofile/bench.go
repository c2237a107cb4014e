package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/streamprofile/streamprofile/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg bench.Config
	fs := newFlags("bench", stderr)
	var brokers, users, loads, logFormat, logLevel string
	var worker bool
	fs.StringVar(&brokers, "brokers", "", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&cfg.Redis, "redis", "127.0.0.1:6379", "Redis address (standalone)")
	fs.IntVar(&cfg.RedisDB, "redis-db", 0, "Redis database number")
	fs.StringVar(&cfg.OutDir, "out", "bench-out", "directory for results.json, results.md, plots and profiles")
	fs.StringVar(&users, "users", "10000,100000,1000000", "distinct users of each scaling run, comma-separated")
	fs.BoolVar(&cfg.Quick, "quick", false, "smoke run: tiny load, short windows (seconds); --users defaults to 2000")
	fs.IntVar(&cfg.Partitions, "partitions", 6, "partitions of the benchmark topics")
	fs.StringVar(&loads, "loads", "", "offered loads of the latency runs as fractions of the end-to-end maximum, min(ingester max, score role max), or of the ingester max with --no-score (default 0.25,0.5,0.8; 0.5 with --quick)")
	fs.DurationVar(&cfg.LatencyWindow, "latency-window", 0, "measured length of each latency run (default 30s; 3s with --quick)")
	fs.DurationVar(&cfg.LatencyWarmup, "latency-warmup", 0, "warm-up before each latency window (default 5s; 1s with --quick)")
	fs.Int64Var(&cfg.MinEvents, "min-events", 0, "fewest events of each pre-loaded topic: more rounds of the same users (0: 200000; none with --quick)")
	fs.Int64Var(&cfg.MaxEvents, "max-events", 0, "cap on the events of each pre-loaded topic (0: one round, ~3.9 per user)")
	fs.IntVar(&cfg.Repeats, "repeats", 0, "runs of the floor and maximum-speed phases, fastest kept (0: 3 for rounds of up to 500k events, else 1)")
	fs.IntVar(&cfg.CacheUsers, "cache-users", 0, "users cached per partition by the measured ingester (0: pipeline default)")
	fs.DurationVar(&cfg.TTL, "ttl", 0, "user TTL of the measured ingester (0: store default)")
	fs.IntVar(&cfg.BoundedCacheUsers, "bounded-cache-users", 10000, "repeat the last scale with this cache bound per partition (0: not run; off with --quick unless set)")
	fs.DurationVar(&cfg.BoundedTTL, "bounded-ttl", 10*time.Second, "user TTL of that repeat, shorter than the run; Redis is read at its end and again once the TTL (plus a margin) has passed with no event")
	fs.StringVar(&cfg.IngestCPUs, "ingest-cpus", "", "taskset CPU list of the measured process (default: the last CPU; \"-\": not pinned)")
	fs.StringVar(&cfg.LoadCPUs, "load-cpus", "", "taskset CPU list of the load generator (default: the other CPUs; \"-\": not pinned)")
	fs.StringVar(&cfg.ScoreCPUs, "score-cpus", "", "taskset CPU list of the score role in the latency runs (default: the measured side's, --ingest-cpus; \"-\": not pinned)")
	fs.BoolVar(&cfg.NoScore, "no-score", false, "leave the score role out of the latency runs (only durable and snapshot-emit latencies)")
	fs.StringVar(&cfg.Document, "document", "", "also write the benchmark report (BENCHMARKS.md) here at the end of a complete run, plots linked relative to it")
	fs.BoolVar(&cfg.CompareSnapshotJSON, "compare-snapshot-json", true, "also run the first scale with snapshots encoded by encoding/json (before/after the encoder fix)")
	fs.IntVar(&cfg.Nice, "nice", 0, "run the workers under nice -n N (negative: higher priority, for a machine shared with other work)")
	fs.StringVar(&cfg.Profile, "profile", bench.ProfileAuto, "pprof of a re-run: auto (when a throughput target is missed), always or never")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&logLevel, "log-level", "warn", "log level")
	fs.BoolVar(&worker, "worker", false, "run as a benchmark worker process (internal: started by bench itself)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if worker {
		return bench.RunWorker(ctx, os.Stdin, stdout)
	}
	log, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log
	cfg.Brokers = splitList(brokers)
	quickUsers := cfg.Quick && !flagSet(fs, "users")
	if cfg.Quick && !flagSet(fs, "bounded-cache-users") {
		cfg.BoundedCacheUsers = 0
	}
	if !quickUsers {
		for _, u := range splitList(users) {
			n, err := strconv.Atoi(strings.ReplaceAll(u, "_", ""))
			if err != nil {
				return usageError{fmt.Errorf("--users %q: %w", users, err)}
			}
			cfg.Users = append(cfg.Users, n)
		}
	}
	for _, l := range splitList(loads) {
		f, err := strconv.ParseFloat(l, 64)
		if err != nil {
			return usageError{fmt.Errorf("--loads %q: %w", loads, err)}
		}
		cfg.Loads = append(cfg.Loads, f)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.WorkerCommand = []string{exe, "bench", "--worker"}
	cfg.Command = "streamprofile bench " + strings.Join(args, " ")
	cfg.Progress = stderr
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	start := time.Now()
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		fmt.Fprintf(stdout, "bench: %d scale(s) in %s; results in %s (results.json, results.md, plots)\n",
			len(res.Scales), time.Since(start).Round(time.Second), cfg.OutDir)
		if cfg.Document != "" && err == nil {
			fmt.Fprintf(stdout, "bench: report in %s\n", cfg.Document)
		}
		missed := 0
		for _, t := range res.Targets {
			if !t.Met {
				missed++
			}
		}
		fmt.Fprintf(stdout, "bench: %d of %d targets met\n", len(res.Targets)-missed, len(res.Targets))
	}
	return err
}

// flagSet reports whether the parsed command line of fs set the flag name,
// or its environment variable is set.
func flagSet(fs *flag.FlagSet, name string) bool {
	_, ok := os.LookupEnv(envKey(name))
	return ok || isSet(fs, name)
}
