package bench

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// Profile modes of Config.Profile.
const (
	ProfileAuto   = "auto"   // profile a re-run when a throughput target is missed
	ProfileAlways = "always" // always profile a re-run at the first scale
	ProfileNever  = "never"
)

// Config configures a benchmark run. Every field states its default.
type Config struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string
	// Redis is the standalone Redis address. Required.
	Redis string
	// RedisDB is the Redis database used. Default 0.
	RedisDB int
	// OutDir receives results.json, results.md, plots and profiles.
	// Required.
	OutDir string
	// Document, when set, is the path of the benchmark report written at
	// the end of a complete run (Result.WriteDocument; BENCHMARKS.md for
	// scripts/bench.sh), linking the plots in OutDir by a path relative to
	// it. Default "": not written.
	Document string
	// Users are the distinct-user counts of the scaling runs. Default
	// 10000, 100000, 1000000; 2000 with Quick.
	Users []int
	// Quick is a smoke run: tiny loads, short windows, one offered load,
	// no plots' minimum sizes; seconds instead of minutes. Default false.
	Quick bool
	// Partitions of the clickstream topic (the ingest role's default).
	// Default 6.
	Partitions int
	// Loads are the offered loads of the latency runs, as fractions of
	// the end-to-end maximum: min(the ingester's maximum, the median of
	// its maximum-speed runs; the score role's maximum), or the ingester's
	// maximum alone with NoScore. Default 0.25, 0.5, 0.8 (0.5 with Quick).
	Loads []float64
	// LatencyWindow is how long each latency run is measured, after
	// LatencyWarmup. Defaults 30s and 5s (3s and 1s with Quick).
	LatencyWindow time.Duration
	LatencyWarmup time.Duration
	// MinEvents and MaxEvents bound the events of one scale's pre-loaded
	// topic, which is one whole round of the re-keyed sample (about 3.9
	// events per user) unless that is fewer than MinEvents (then further
	// rounds, of the same users, are added) or more than MaxEvents (then
	// it is cut). Short runs measure start-up more than throughput.
	// Defaults 200000 (0 with Quick) and 0 (no cap).
	MinEvents int64
	MaxEvents int64
	// Repeats is how many times the consume+decode floor and the
	// maximum-speed runs are repeated; the fastest counts (the others are
	// in the results), which filters out other processes' bursts. Default
	// 0: 3 when a scale's round has at most 500k events, else 1.
	Repeats int
	// RedisFloorWindow is how long the Redis floor runs. Default 5s (1s
	// with Quick).
	RedisFloorWindow time.Duration
	// TrainerWindow is how long each trainer measurement runs. Default 3s
	// (300ms with Quick).
	TrainerWindow time.Duration
	// TrainerBatches are the batch sizes TrainBatch is measured at.
	// Default 32, 128, 512.
	TrainerBatches []int
	// CacheUsers and TTL configure the measured ingester (pipeline and
	// store defaults when zero: 100000 users per partition, 30 days).
	CacheUsers int
	TTL        time.Duration
	// BoundedCacheUsers and BoundedTTL, when BoundedCacheUsers > 0,
	// repeat the last scale's maximum-speed run with that cache bound per
	// partition and TTL, to show the state following active users rather
	// than users ever seen: the ingester's memory by the cache, Redis's by
	// the TTL. Redis is read at the end of that run and again once the TTL
	// (plus a margin: a tenth of it, at least 1s) has passed with no event,
	// so the run takes that much longer; a TTL shorter than the run also
	// shows keys expiring while it runs. Defaults 0 (not run) and 10s;
	// BoundedTTL at most PhaseTimeout.
	BoundedCacheUsers int
	BoundedTTL        time.Duration
	// WorkerCommand is the command line that runs RunWorker in a new
	// process (for the streamprofile binary: its path, "bench", "--worker").
	// Required.
	WorkerCommand []string
	// WorkerEnv is added to the workers' environment. Default none.
	WorkerEnv []string
	// IngestCPUs and LoadCPUs are taskset(1) CPU lists for the measured
	// process (ingester, floors, trainer) and the load generator. Default,
	// when taskset is on PATH and the machine has at least 2 CPUs: the last
	// CPU for the measured side and all others for the load side; else
	// empty (not pinned). "-" disables pinning of that side.
	IngestCPUs string
	LoadCPUs   string
	// ScoreCPUs is the taskset(1) CPU list of the score role (app.Scorer,
	// its own process, as deployed) in the latency runs. Default: the
	// measured side's, IngestCPUs: the pipeline (ingest and score) on one
	// side, the load generator on the other. "-" disables pinning.
	ScoreCPUs string
	// NoScore leaves the score role out of the latency runs (then only
	// durable and snapshot-emit latencies are measured). Default false.
	NoScore bool
	// Nice, when not 0, runs the workers under nice(1) with this
	// adjustment (negative: higher priority, which needs the privilege to
	// take it; without it nice warns and runs them unchanged), so that on
	// a machine shared with other work the measured process gets its CPU.
	// Default 0.
	Nice int
	// CompareSnapshotJSON adds, at the first scale, a maximum-speed run
	// whose snapshots are encoded by encoding/json (the pipeline before
	// features.Snapshot.Encode was rewritten): before/after in one run.
	// Default false.
	CompareSnapshotJSON bool
	// Profile: ProfileAuto, ProfileAlways or ProfileNever. Default
	// ProfileAuto.
	Profile string
	// PhaseTimeout bounds every phase. Default 15m.
	PhaseTimeout time.Duration
	// Command is recorded in the results as the command that produced
	// them. Default none.
	Command string
	// Progress receives progress lines. Default os.Stderr.
	Progress io.Writer
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if len(c.Users) == 0 {
		c.Users = []int{10000, 100000, 1000000}
		if c.Quick {
			c.Users = []int{2000}
		}
	}
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	if len(c.Loads) == 0 {
		c.Loads = []float64{0.25, 0.5, 0.8}
		if c.Quick {
			c.Loads = []float64{0.5}
		}
	}
	dur := func(d *time.Duration, full, quick time.Duration) {
		if *d <= 0 {
			*d = full
			if c.Quick {
				*d = quick
			}
		}
	}
	if c.MinEvents == 0 && !c.Quick {
		c.MinEvents = 200000
	}
	dur(&c.LatencyWindow, 30*time.Second, 3*time.Second)
	dur(&c.LatencyWarmup, 5*time.Second, time.Second)
	dur(&c.RedisFloorWindow, 5*time.Second, time.Second)
	dur(&c.TrainerWindow, 3*time.Second, 300*time.Millisecond)
	dur(&c.PhaseTimeout, 15*time.Minute, 2*time.Minute)
	dur(&c.BoundedTTL, 10*time.Second, 10*time.Second)
	if len(c.TrainerBatches) == 0 {
		c.TrainerBatches = []int{32, 128, 512}
	}
	if c.IngestCPUs == "" && c.LoadCPUs == "" {
		if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
			n := runtime.NumCPU()
			c.IngestCPUs = strconv.Itoa(n - 1)
			c.LoadCPUs = "0"
			if n > 2 {
				c.LoadCPUs = "0-" + strconv.Itoa(n-2)
			}
		}
	}
	if c.ScoreCPUs == "" {
		c.ScoreCPUs = c.IngestCPUs
	}
	if c.Profile == "" {
		c.Profile = ProfileAuto
	}
	if c.Progress == nil {
		c.Progress = os.Stderr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports missing or invalid settings.
func (c Config) Validate() error {
	d := c.WithDefaults()
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(f, a...)) }
	switch {
	case len(d.Brokers) == 0:
		return bad("no Kafka brokers")
	case d.Redis == "":
		return bad("no Redis address")
	case d.OutDir == "":
		return bad("no output directory")
	case len(d.WorkerCommand) == 0:
		return bad("no worker command")
	case d.BoundedCacheUsers < 0 || (d.BoundedCacheUsers > 0 && (c.BoundedTTL < 0 || d.BoundedTTL > d.PhaseTimeout)):
		return bad("bounded run: cache users %d, ttl %s", d.BoundedCacheUsers, d.BoundedTTL)
	case d.MinEvents < 0 || d.MaxEvents < 0 || (d.MaxEvents > 0 && d.MaxEvents < d.MinEvents):
		return bad("events bounds: min %d, max %d", d.MinEvents, d.MaxEvents)
	case d.RedisDB < 0:
		return bad("redis db %d", d.RedisDB)
	case !slices.Contains([]string{ProfileAuto, ProfileAlways, ProfileNever}, d.Profile):
		return bad("profile %q: want auto, always or never", d.Profile)
	}
	for _, u := range d.Users {
		if u < 1 {
			return bad("users %d: want at least 1", u)
		}
	}
	for _, l := range d.Loads {
		if !(l > 0 && l <= 1) {
			return bad("load %g: want a fraction in (0, 1]", l)
		}
	}
	for _, b := range d.TrainerBatches {
		if b < 1 || b > 4096 {
			return bad("trainer batch %d: want 1..4096", b)
		}
	}
	return nil
}
