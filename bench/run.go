package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/sink/scorer"
	"github.com/streamprofile/streamprofile/stream"
)

// run is one benchmark run's coordinator state.
type run struct {
	cfg    Config
	id     string
	rdb    *redis.Client
	kc     *kafka.Client
	pcfg   pipeline.Config
	res    *Result
	sample *Sample

	mu      sync.Mutex
	workers []*worker
}

// Run performs the benchmark described by cfg and writes its output to
// cfg.OutDir. It returns the result even when writing the output fails.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	sample, err := LoadSample()
	if err != nil {
		return nil, err
	}
	b := &run{
		cfg:    cfg,
		id:     strconv.FormatInt(time.Now().UnixMilli()%1e10, 36),
		rdb:    redis.NewClient(&redis.Options{Addr: cfg.Redis, DB: cfg.RedisDB}),
		kc:     &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 30 * time.Second},
		pcfg:   pipeline.Config{CacheUsers: cfg.CacheUsers}.WithDefaults(),
		sample: sample,
	}
	defer b.rdb.Close()
	defer b.killAll()
	start := time.Now()
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = 30 * 24 * time.Hour // features.StoreConfig's default
	}
	b.res = &Result{
		Version: ResultVersion, Started: start.UTC(), Command: cfg.Command, Quick: cfg.Quick, Machine: machine(),
		Setup: Setup{
			Ingester: "separate process: app.Ingester with production defaults (snapshot stage, PII masking) " +
				"plus a latency stage",
			LoadGenerator: fmt.Sprintf("separate process: kafka-go writer, murmur2 keys, what is due published every %s (synchronous writes)", pacingTick),
			IngestCPUs:    cfg.IngestCPUs, LoadCPUs: cfg.LoadCPUs, Nice: cfg.Nice, Partitions: cfg.Partitions,
			FlushEvents: b.pcfg.FlushEvents, FlushIntervalMs: float64(b.pcfg.FlushInterval) / 1e6,
			MaxBatch: b.pcfg.MaxBatch, CacheUsers: b.pcfg.CacheUsers, TTL: ttl.String(),
			Trigger: "the segment-changes and retarget (trigger) records the score role emitted for the event (their " +
				"record timestamps), matched to it by the header " + scorer.HeaderSourceEvent + " (the event id); records " +
				"from timers have no source event and are only counted",
			SampleRepricedItems: sample.RepricedItems(),
			Dataset: fmt.Sprintf("bundled REES46 sample (%d events, %d users) re-keyed: copy k renames user u to u-k "+
				"and shifts event times by k×%s; copies follow each other; later rounds repeat the users with new ids",
				sample.Events(), sample.Users(), CopyShift),
		},
	}
	if cfg.NoScore {
		b.res.Setup.Trigger = "none measured: no score role (--no-score); the latency targets judge the profile-examples " +
			"snapshot emitted for the event instead"
	} else {
		b.res.Setup.Scorer = "separate process (the score role is its own deployment): app.Scorer with production defaults " +
			"(embedded segment catalogue, default triggers, flush 500 snapshots or 20 ms), own consumer group on the latency " +
			"run's snapshot topic, champion: the default network trained at start-up for one pass over the sample; erasures off"
		b.res.Setup.ScoreCPUs = cfg.ScoreCPUs
	}
	if info, err := b.info(ctx, "server"); err == nil {
		b.res.Machine.RedisVersion = info["redis_version"]
	} else {
		return nil, fmt.Errorf("bench: redis: %w", err)
	}
	for i, n := range cfg.Users {
		sc, err := b.scale(ctx, n, i == len(cfg.Users)-1)
		if sc != nil {
			b.res.Scales = append(b.res.Scales, *sc)
		}
		if err != nil {
			b.finish(start)
			return b.res, err
		}
		b.finish(start)
	}
	b.progress("trainer: %v batch sizes, %s each", cfg.TrainerBatches, cfg.TrainerWindow)
	var tr TrainerResult
	if err := b.runWorker(ctx, "trainer", cfg.IngestCPUs, workerSpec{Role: roleTrainer,
		Trainer: &trainerSpec{BatchSizes: cfg.TrainerBatches, Duration: cfg.TrainerWindow}}, &tr); err != nil {
		b.finish(start)
		return b.res, err
	}
	b.res.Trainer = &tr
	if err := b.finish(start); err != nil {
		return b.res, err
	}
	return b.res, b.writeDocument()
}

// writeDocument writes Config.Document, if set.
func (b *run) writeDocument() error {
	if b.cfg.Document == "" {
		return nil
	}
	doc, err := filepath.Abs(b.cfg.Document)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(b.cfg.OutDir)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(doc), out)
	if err != nil {
		return err
	}
	f, err := os.Create(doc)
	if err != nil {
		return err
	}
	if err := b.res.WriteDocument(f, filepath.ToSlash(rel)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// finish writes the output files of what has been measured.
func (b *run) finish(start time.Time) error {
	b.res.Seconds = time.Since(start).Seconds()
	b.res.Targets = targets(b.res)
	js, err := json.MarshalIndent(b.res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.cfg.OutDir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(b.cfg.OutDir, "results.md"))
	if err != nil {
		return err
	}
	if err := b.res.WriteMarkdown(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return WritePlots(b.res, b.cfg.OutDir)
}

func (b *run) progress(format string, a ...any) {
	fmt.Fprintf(b.cfg.Progress, "bench: "+format+"\n", a...)
}

func (b *run) track(w *worker) {
	b.mu.Lock()
	b.workers = append(b.workers, w)
	b.mu.Unlock()
}

func (b *run) killAll() {
	b.mu.Lock()
	ws := b.workers
	b.workers = nil
	b.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
}

// runWorker runs a worker that needs no commands and waits for its result.
func (b *run) runWorker(ctx context.Context, name, cpus string, spec workerSpec, v any) error {
	return b.runWorkerShown(ctx, name, cpus, spec, v, nil)
}

// runWorkerShown is runWorker displaying the worker's progress as s
// describes (nil: not displayed).
func (b *run) runWorkerShown(ctx context.Context, name, cpus string, spec workerSpec, v any, s *shown) error {
	w, err := b.startWorker(ctx, name, cpus, spec)
	if err != nil {
		return err
	}
	if s != nil {
		// After the wait: the worker's last count is in.
		defer b.follow(w, *s)()
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PhaseTimeout)
	defer cancel()
	if err := w.wait(ctx, v); err != nil {
		w.kill()
		return err
	}
	return nil
}

// profileMinEvents is the smallest round profiled (unless it is the last
// scale): a shorter run gives too few CPU samples.
const profileMinEvents = 200000

// scale measures every figure at n distinct users; last says it is the last
// scale of the run.
func (b *run) scale(ctx context.Context, n int, last bool) (*Scale, error) {
	cfg := b.cfg
	src, err := b.sample.Rekey(n, 0)
	if err != nil {
		return nil, err
	}
	sc := &Scale{Users: n, Copies: src.Copies(), EventsPerRound: src.PerRound()}
	count := max(int64(src.PerRound()), cfg.MinEvents)
	if cfg.MaxEvents > 0 {
		count = min(count, cfg.MaxEvents)
	}
	base := "bench." + b.id + ".u" + strconv.Itoa(n)
	prefix := "spbench" + b.id + "u" + strconv.Itoa(n)
	topics := []string{base, base + ".dlq", base + ".snap"}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		b.deleteTopics(cctx, topics...)
		_ = b.deletePrefix(cctx, prefix)
	}()
	if err := b.ensureTopics(ctx, topics...); err != nil {
		return sc, err
	}

	// Pre-load.
	b.progress("%s users: pre-loading %d events (%.1f rounds of %d copies of the sample)", fmtUsers(n), count,
		float64(count)/float64(src.PerRound()), src.Copies())
	var pre produceResult
	if err := b.runWorker(ctx, fmt.Sprintf("u%d-preload", n), cfg.LoadCPUs, workerSpec{Role: roleProduce,
		Produce: &produceSpec{Brokers: cfg.Brokers, Topic: base, Users: n, Count: count, Partitions: cfg.Partitions}}, &pre); err != nil {
		return sc, err
	}
	sc.Preload = RateFigure{Events: pre.Published, Seconds: pre.Seconds, EventsPerSec: pre.Rate, Proc: pre.Proc}
	b.res.Setup.LoadGOMAXPROCS = pre.Proc.GOMAXPROCS
	ends, err := endOffsets(ctx, cfg.Brokers, base, cfg.Partitions)
	if err != nil {
		return sc, err
	}
	var total int64
	for _, e := range ends {
		total += e
	}

	// Floor: consume + decode.
	repeats := cfg.Repeats
	if repeats <= 0 {
		repeats = 1
		if total <= 500000 && !cfg.Quick {
			repeats = 3
		}
	}
	b.progress("%s users: consume+decode floor (best of %d)", fmtUsers(n), repeats)
	for i := range repeats {
		var fl rateResult
		if err := b.runWorker(ctx, fmt.Sprintf("u%d-consume-floor-%d", n, i), cfg.IngestCPUs, workerSpec{Role: roleConsumeFloor,
			ConsumeFloor: &consumeSpec{Brokers: cfg.Brokers, Topic: base, Ends: ends,
				MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: 1024}}, &fl); err != nil {
			return sc, err
		}
		if fl.Invalid > 0 {
			sc.Warnings = append(sc.Warnings, fmt.Sprintf("%d records did not decode in the floor run", fl.Invalid))
		}
		sc.ConsumeFloor.Runs = append(sc.ConsumeFloor.Runs, fl.Rate)
		if fl.Rate > sc.ConsumeFloor.EventsPerSec {
			runs := sc.ConsumeFloor.Runs
			sc.ConsumeFloor = RateFigure{Events: fl.Events, Seconds: fl.Seconds, EventsPerSec: fl.Rate,
				CPUSecondsPerMillion: perMillion(fl.Proc.CPUSeconds, fl.Events), Proc: fl.Proc, Runs: runs}
		}
	}

	// The real pipeline at maximum speed.
	b.progress("%s users: pipeline at maximum speed (%d records, best of %d)", fmtUsers(n), total, repeats)
	mem0, err := b.usedMemory(ctx)
	if err != nil {
		return sc, err
	}
	// The first run's state stays for the memory figures and the latency
	// runs; repeats write under prefixes of their own, removed at once.
	mr, err := b.maxRun(ctx, n, base, ends, total, maxOpts{label: "max", prefix: prefix})
	if err != nil {
		return sc, err
	}
	mem1, err := b.usedMemory(ctx)
	if err != nil {
		return sc, err
	}
	first := *mr
	if mr, err = b.repeatMax(ctx, n, base, ends, total, maxOpts{label: "max", prefix: prefix}, mr, repeats); err != nil {
		return sc, err
	}
	b.finishMax(mr, sc)
	sc.Max = *mr
	sc.Keys, sc.StateBytes, err = b.userKeys(ctx, prefix)
	if err != nil {
		return sc, err
	}
	sc.Memory = MemoryTrace{
		PeakRSSBytes: first.Ingest.Proc.PeakRSSBytes, HeapInuseBytes: first.Ingest.Proc.HeapInuseBytes,
		CacheBoundUsers: b.pcfg.CacheUsers * cfg.Partitions, RedisUsedMemoryBytes: mem1 - mem0,
	}
	sc.Memory.RedisBytesPer100k = float64(mem1-mem0) / float64(n) * 1e5
	b.res.Setup.IngestGOMAXPROCS = mr.Ingest.Proc.GOMAXPROCS
	if mr.Events < total {
		sc.Warnings = append(sc.Warnings, fmt.Sprintf("%d of %d records were applied (dead-lettered %d, duplicates %d)",
			mr.Events, total, mr.Ingest.DeadLettered, mr.Ingest.Duplicates))
	}

	// Redis floor at the flush's pipeline depth.
	depth := max(1, int(math.Round(mr.UsersPerFlush)))
	b.progress("%s users: Redis floor (pipelines of %d user writes)", fmtUsers(n), depth)
	var rf redisResult
	if err := b.runWorker(ctx, fmt.Sprintf("u%d-redis-floor", n), cfg.IngestCPUs, workerSpec{Role: roleRedisFloor,
		RedisFloor: &redisSpec{Addr: cfg.Redis, DB: cfg.RedisDB, Prefix: prefix + "floor", Users: n, Depth: depth,
			Concurrency: cfg.Partitions, PayloadBytes: int(sc.StateBytes), Duration: cfg.RedisFloorWindow}}, &rf); err != nil {
		return sc, err
	}
	if err := b.deletePrefix(ctx, prefix+"floor"); err != nil {
		return sc, err
	}
	sc.RedisFloor = RedisFloor{Depth: depth, Concurrency: cfg.Partitions, PayloadBytes: int(sc.StateBytes),
		UserWritesPerSec: float64(rf.UserWrites) / rf.Seconds, CommandsPerSec: float64(rf.Commands) / rf.Seconds,
		PipelinesPerSec: float64(rf.Pipelines) / rf.Seconds, Proc: rf.Proc}
	if mr.Ingest.FlushUsers > 0 {
		sc.RedisFloor.EventsPerSecEq = sc.RedisFloor.UserWritesPerSec * float64(mr.Events) / float64(mr.Ingest.FlushUsers)
	}
	b.finishMax(&sc.Max, sc)

	// Before/after the snapshot-encoding fix, in this run.
	firstScale := len(b.res.Scales) == 0
	if firstScale && cfg.CompareSnapshotJSON {
		b.progress("%s users: pipeline at maximum speed with snapshots encoded by encoding/json (before the fix, best of %d)",
			fmtUsers(n), repeats)
		o := maxOpts{label: "before", prefix: prefix + "before", jsonMarshal: true}
		bf, err := b.maxRun(ctx, n, base, ends, total, o)
		if err != nil {
			return sc, err
		}
		if err := b.deletePrefix(ctx, o.prefix); err != nil {
			return sc, err
		}
		if bf, err = b.repeatMax(ctx, n, base, ends, total, o, bf, repeats); err != nil {
			return sc, err
		}
		b.finishMax(bf, sc)
		sc.Before = bf
	}

	// Profiles when a throughput target is missed, once, at the first scale
	// long enough for a profile of some seconds (or the last).
	missed := sc.Max.RatioToFloor < targetFloorRatio || sc.Max.RoundTripsPerEvent > targetRoundTrips
	long := total >= profileMinEvents || last
	if len(b.res.Profiles) == 0 && long && (cfg.Profile == ProfileAlways || (cfg.Profile == ProfileAuto && missed)) {
		b.progress("%s users: profiled re-run", fmtUsers(n))
		pdir := filepath.Join(cfg.OutDir, "profiles")
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return sc, err
		}
		cpuPath := filepath.Join(pdir, fmt.Sprintf("ingest-u%d.cpu.pprof", n))
		allocPath := filepath.Join(pdir, fmt.Sprintf("ingest-u%d.allocs.pprof", n))
		pr, err := b.maxRun(ctx, n, base, ends, total, maxOpts{label: "profiled", prefix: prefix + "prof",
			cpuProfile: cpuPath, allocProfile: allocPath})
		if err != nil {
			return sc, err
		}
		if err := b.deletePrefix(ctx, prefix+"prof"); err != nil {
			return sc, err
		}
		b.finishMax(pr, sc)
		sc.Profiled = pr
		prof, err := summarizeProfiles(cfg.OutDir, cpuPath, allocPath)
		if err != nil {
			sc.Warnings = append(sc.Warnings, "profile summary: "+err.Error())
		} else {
			prof.Users = n
			b.res.Profiles = append(b.res.Profiles, *prof)
		}
	}

	// State bounded by active users: the last scale again with a small
	// cache and a TTL shorter than the run; Redis read at its end and again
	// once the TTL has passed with no event.
	if last && cfg.BoundedCacheUsers > 0 {
		bd, err := b.boundedRun(ctx, n, base, ends, total, prefix+"bounded", sc)
		if err != nil {
			return sc, err
		}
		sc.Bounded = bd
	}

	// The score role at full speed on the maximum-speed runs' snapshots,
	// and the end-to-end maximum the latency runs' loads are fractions of.
	sc.EndToEndMaxPerSec = sc.Max.MedianEventsPerSec
	sc.LoadBasis = fmt.Sprintf("the ingester's maximum (median of the maximum-speed runs, %s events/s); no score role",
		fmtRate(sc.Max.MedianEventsPerSec))
	if !cfg.NoScore {
		sm, err := b.scoreMaxRun(ctx, n, base, prefix, total)
		topics = append(topics, base+".changes", base+".retarget")
		if err != nil {
			return sc, err
		}
		sc.ScoreMax = sm
		// One snapshot per applied event, in the pipeline's own ratio.
		perSnap := 1.0
		if first.Ingest.Emitted > 0 {
			perSnap = float64(first.Events) / float64(first.Ingest.Emitted)
		}
		sc.ScoreMaxEventsPerSec = sm.SnapshotsPerSec * perSnap
		sc.EndToEndMaxPerSec = min(sc.Max.MedianEventsPerSec, sc.ScoreMaxEventsPerSec)
		sc.LoadBasis = fmt.Sprintf("the end-to-end maximum, min(ingester %s, score role %s) = %s events/s",
			fmtRate(sc.Max.MedianEventsPerSec), fmtRate(sc.ScoreMaxEventsPerSec), fmtRate(sc.EndToEndMaxPerSec))
		if sm.Unscored > 0 {
			sc.Warnings = append(sc.Warnings, fmt.Sprintf("score role maximum: measured over %d snapshots in %.1f s (window bound), "+
				"%d of the %d aimed at left", sm.Snapshots, sm.Seconds, sm.Unscored, sm.Snapshots+sm.Unscored))
		}
	}

	// Latency at fixed offered loads.
	round := pre.NextRound
	for _, f := range cfg.Loads {
		lr, next, err := b.loadRun(ctx, n, base, prefix, f, sc.EndToEndMaxPerSec, round)
		if err != nil {
			return sc, err
		}
		topics = append(topics, lr.topics...)
		sc.Loads = append(sc.Loads, lr.LoadRun)
		if lr.Warning != "" {
			sc.Warnings = append(sc.Warnings, fmt.Sprintf("%.0f %% load: %s", 100*f, lr.Warning))
		}
		round = next
	}
	return sc, nil
}

// boundedRun repeats the maximum-speed run with Config.BoundedCacheUsers
// per partition and Config.BoundedTTL under prefix (removed after it). It
// reads the user keys and used_memory at the end of the run, waits until
// the TTL and a margin have passed since (no event is written meanwhile, so
// no user is active and every user key should have expired), and reads
// them again.
func (b *run) boundedRun(ctx context.Context, n int, base string, ends map[int]int64, total int64, prefix string,
	sc *Scale) (*BoundedRun, error) {
	cfg := b.cfg
	b.progress("%s users: pipeline at maximum speed with %d cached users per partition and a %s TTL",
		fmtUsers(n), cfg.BoundedCacheUsers, cfg.BoundedTTL)
	o := maxOpts{label: "bounded", prefix: prefix, cacheUsers: cfg.BoundedCacheUsers, ttl: cfg.BoundedTTL}
	m0, err := b.usedMemory(ctx)
	if err != nil {
		return nil, err
	}
	bm, err := b.maxRun(ctx, n, base, ends, total, o)
	if err != nil {
		return nil, err
	}
	// The worker has exited: every write of the run is behind us.
	expired := time.Now().Add(cfg.BoundedTTL + expiryMargin(cfg.BoundedTTL))
	keys, m1, err := b.liveUsers(ctx, o.prefix)
	if err != nil {
		return nil, err
	}
	wait := time.Until(expired)
	b.progress("%s users: %d user keys at the end of the bounded run; waiting %s for the %s TTL to pass with no event",
		fmtUsers(n), keys, wait.Round(100*time.Millisecond), cfg.BoundedTTL)
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	keys2, m2, err := b.liveUsers(ctx, o.prefix)
	if err != nil {
		return nil, err
	}
	if err := b.deletePrefix(ctx, o.prefix); err != nil {
		return nil, err
	}
	b.finishMax(bm, sc)
	return &BoundedRun{CacheUsers: cfg.BoundedCacheUsers, TTL: cfg.BoundedTTL.String(),
		CacheBoundUsers: cfg.BoundedCacheUsers * cfg.Partitions, EventsPerSec: bm.EventsPerSec, Seconds: bm.Seconds,
		PeakRSSBytes: bm.Ingest.Proc.PeakRSSBytes, HeapInuseBytes: bm.Ingest.Proc.HeapInuseBytes,
		RedisKeysAtEnd: keys, RedisUsedMemoryBytes: m1 - m0,
		Waited: (cfg.BoundedTTL + expiryMargin(cfg.BoundedTTL)).String(), RedisKeysAfterTTL: keys2,
		RedisUsedMemoryAfterTTLBytes: m2 - m0, Max: bm}, nil
}

// liveUsers counts the user keys under prefix, then reads used_memory:
// the scan drops the keys whose TTL has passed, so used_memory then counts
// the live ones.
func (b *run) liveUsers(ctx context.Context, prefix string) (keys, usedMemory int64, err error) {
	if keys, _, err = b.userKeys(ctx, prefix); err != nil {
		return 0, 0, err
	}
	usedMemory, err = b.usedMemory(ctx)
	return keys, usedMemory, err
}

// expiryMargin is how long, beyond a TTL, the bounded run waits before it
// counts the keys left: a tenth of the TTL, at least a second.
func expiryMargin(ttl time.Duration) time.Duration { return max(time.Second, ttl/10) }

// scoreMaxRun runs the score role (as in the latency runs: its own
// process on Config.ScoreCPUs, production defaults) at full speed on the
// snapshot topic the maximum-speed runs filled (base.snap): the first
// total snapshots (one run's), bounded by scoreMaxWindow. Its Redis state
// goes under a prefix of its own, removed after it, so the latency runs'
// scorers start as they would without it.
func (b *run) scoreMaxRun(ctx context.Context, n int, base, prefix string, total int64) (*ScoreRun, error) {
	cfg := b.cfg
	if err := b.ensureTopics(ctx, base+".changes", base+".retarget"); err != nil {
		return nil, err
	}
	sprefix := prefix + "s"
	win := scoreMaxWindow(cfg)
	b.progress("%s users: score role at maximum speed (up to %d snapshots or %s)", fmtUsers(n), total, win)
	var sr ScoreRun
	err := b.runWorkerShown(ctx, fmt.Sprintf("u%d-score-max", n), cfg.ScoreCPUs, workerSpec{Role: roleScore,
		Score: &scoreSpec{Brokers: cfg.Brokers, Redis: cfg.Redis, DB: cfg.RedisDB, Group: sprefix + ".score", Prefix: sprefix,
			SnapshotTopic: base + ".snap", ChangesTopic: base + ".changes", RetargetTopic: base + ".retarget",
			Partitions: cfg.Partitions, MaxSnapshots: total, MaxWindow: win}}, &sr,
		&shown{desc: fmt.Sprintf("bench: %s users, score role: snapshots handled", fmtUsers(n)), total: total, unit: "snap"})
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if derr := b.deletePrefix(cctx, sprefix); err == nil {
		err = derr
	}
	if err != nil {
		return nil, err
	}
	b.res.Setup.ScoreGOMAXPROCS = sr.Proc.GOMAXPROCS
	return &sr, nil
}

// scoreMaxWindow bounds the score role's maximum-speed run: the latency
// window, at least 10 s (5 s with Quick).
func scoreMaxWindow(cfg Config) time.Duration {
	if cfg.Quick {
		return max(cfg.LatencyWindow, 5*time.Second)
	}
	return max(cfg.LatencyWindow, 10*time.Second)
}

// repeatMax runs repeats−1 more maximum-speed runs like o (each under a
// key prefix of its own, removed after it) and returns the fastest of them
// and first, with every run's rate in Runs.
func (b *run) repeatMax(ctx context.Context, n int, topic string, ends map[int]int64, total int64, o maxOpts,
	first *MaxRun, repeats int) (*MaxRun, error) {
	best := first
	runs := []float64{first.EventsPerSec}
	for i := 1; i < repeats; i++ {
		r := o
		r.label, r.prefix = fmt.Sprintf("%s-%d", o.label, i), fmt.Sprintf("%sr%d", o.prefix, i)
		m, err := b.maxRun(ctx, n, topic, ends, total, r)
		if err != nil {
			return nil, err
		}
		if err := b.deletePrefix(ctx, r.prefix); err != nil {
			return nil, err
		}
		runs = append(runs, m.EventsPerSec)
		if m.EventsPerSec > best.EventsPerSec {
			best = m
		}
	}
	best.Runs = runs
	sorted := slices.Clone(runs)
	slices.Sort(sorted)
	if k := len(sorted); k%2 == 1 {
		best.MedianEventsPerSec = sorted[k/2]
	} else {
		best.MedianEventsPerSec = (sorted[k/2-1] + sorted[k/2]) / 2
	}
	return best, nil
}

// finishMax fills the ratios of a maximum-speed run to the scale's floors.
func (b *run) finishMax(m *MaxRun, sc *Scale) {
	m.RatioToFloor = ratio(m.EventsPerSec, sc.ConsumeFloor.EventsPerSec)
	m.CPURatioToFloor = ratio(sc.ConsumeFloor.CPUSecondsPerMillion, m.CPUSecondsPerMillion)
	m.RatioToRedisFloor = ratio(m.EventsPerSec, sc.RedisFloor.EventsPerSecEq)
}

// maxOpts varies a maximum-speed run.
type maxOpts struct {
	label, prefix            string // worker name part; Redis key prefix (fresh)
	cpuProfile, allocProfile string
	jsonMarshal              bool          // snapshots encoded by encoding/json (before the fix)
	cacheUsers               int           // ingester cache bound (0: Config.CacheUsers)
	ttl                      time.Duration // user TTL (0: Config.TTL)
}

// maxRun drains the pre-loaded topic with a fresh ingester (new group, key
// prefix as given).
func (b *run) maxRun(ctx context.Context, n int, topic string, ends map[int]int64, total int64, o maxOpts) (*MaxRun, error) {
	cfg := b.cfg
	label, prefix := o.label, o.prefix
	cacheUsers, ttl := cfg.CacheUsers, cfg.TTL
	if o.cacheUsers > 0 {
		cacheUsers = o.cacheUsers
	}
	if o.ttl != 0 {
		ttl = o.ttl
	}
	cs0, err := b.commandStats(ctx)
	if err != nil {
		return nil, err
	}
	var ir ingestResult
	if err := b.runWorkerShown(ctx, fmt.Sprintf("u%d-%s-ingest", n, label), cfg.IngestCPUs, workerSpec{Role: roleIngest,
		Ingest: &ingestSpec{Brokers: cfg.Brokers, Redis: cfg.Redis, DB: cfg.RedisDB, Group: prefix + "." + label,
			Topic: topic, SnapshotTopic: topic + ".snap", Prefix: prefix, Partitions: cfg.Partitions,
			CacheUsers: cacheUsers, TTL: ttl, Expect: total, Ends: ends,
			CPUProfile: o.cpuProfile, AllocProfile: o.allocProfile, SnapshotJSONMarshal: o.jsonMarshal}}, &ir,
		&shown{desc: fmt.Sprintf("bench: %s users, %s run: records consumed", fmtUsers(n), label), total: total, unit: "ev"}); err != nil {
		return nil, err
	}
	cs1, err := b.commandStats(ctx)
	if err != nil {
		return nil, err
	}
	m := &MaxRun{Events: ir.Events, Seconds: ir.Seconds, EventsPerSec: ir.Rate, Ingest: ir, Commands: map[string]int64{}}
	// Latencies of a drained backlog mean nothing; keep the file small.
	m.Ingest.Durable, m.Ingest.Processed = Histogram{}, Histogram{}
	var client, script int64
	for k, v := range cs1 {
		d := v - cs0[k]
		if d <= 0 {
			continue
		}
		m.Commands[k] = d
		if clientCommand[k] {
			client += d
		} else {
			script += d
		}
	}
	ev := max(ir.Events, 1)
	m.RoundTripsPerEvent = float64(ir.RoundTrips) / float64(ev)
	m.ClientCommandsPerEvent = float64(client) / float64(ev)
	m.ScriptCommandsPerEvent = float64(script) / float64(ev)
	if ir.Flushes > 0 {
		m.EventsPerFlush = float64(ir.Events) / float64(ir.Flushes)
		m.UsersPerFlush = float64(ir.FlushUsers) / float64(ir.Flushes)
		m.FlushMsAvg = ir.FlushSeconds * 1e3 / float64(ir.Flushes)
	}
	m.CPUSecondsPerMillion = perMillion(ir.Proc.CPUSeconds, ir.Events)
	m.CPUUtilisation = ratio(ir.Proc.CPUSeconds, ir.Seconds)
	m.IngestCPUBusy, m.MachineBusy = ir.BusyOwn, ir.BusyAll
	return m, nil
}

// clientCommand names the commands the ingester sends itself; the others
// counted by Redis run inside its Lua scripts.
var clientCommand = map[string]bool{
	"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "hmget": true, "get": true,
	"mget": true, "multi": true, "exec": true, "set": true, "ping": true, "hello": true, "client|setinfo": true,
}

type loadRunResult struct {
	LoadRun
	topics []string
}

// loadRun measures latency at fraction f of maxRate, publishing from round
// on; it returns the next unused round.
func (b *run) loadRun(ctx context.Context, n int, base, prefix string, f, maxRate float64, round int) (*loadRunResult, int, error) {
	cfg := b.cfg
	pct := strconv.Itoa(int(math.Round(100 * f)))
	topic := base + ".l" + pct
	out := &loadRunResult{topics: []string{topic, topic + ".dlq", topic + ".snap"}}
	scoring := !cfg.NoScore
	if scoring {
		out.topics = append(out.topics, topic+".changes", topic+".retarget")
	}
	out.Fraction, out.OfferedPerSec = f, f*maxRate
	if err := b.ensureTopics(ctx, out.topics...); err != nil {
		return out, round, err
	}
	b.progress("%s users: latency at %s %% load (%s events/s offered) for %s after %s warm-up",
		fmtUsers(n), pct, fmtRate(out.OfferedPerSec), cfg.LatencyWindow, cfg.LatencyWarmup)
	group := prefix + ".l" + pct
	ing, err := b.startWorker(ctx, fmt.Sprintf("u%d-l%s-ingest", n, pct), cfg.IngestCPUs, workerSpec{Role: roleIngest,
		Ingest: &ingestSpec{Brokers: cfg.Brokers, Redis: cfg.Redis, DB: cfg.RedisDB, Group: group,
			Topic: topic, SnapshotTopic: topic + ".snap", Prefix: prefix, Partitions: cfg.Partitions,
			CacheUsers: cfg.CacheUsers, TTL: cfg.TTL}})
	if err != nil {
		return out, round, err
	}
	defer ing.kill()
	pctx, cancel := context.WithTimeout(ctx, cfg.PhaseTimeout)
	defer cancel()
	if err := ing.waitReady(pctx); err != nil {
		return out, round, err
	}
	// The score role, its own process as deployed, on the snapshots.
	var sc *worker
	if scoring {
		sc, err = b.startWorker(ctx, fmt.Sprintf("u%d-l%s-score", n, pct), cfg.ScoreCPUs, workerSpec{Role: roleScore,
			Score: &scoreSpec{Brokers: cfg.Brokers, Redis: cfg.Redis, DB: cfg.RedisDB, Group: group + ".score", Prefix: prefix,
				SnapshotTopic: topic + ".snap", ChangesTopic: topic + ".changes", RetargetTopic: topic + ".retarget",
				Partitions: cfg.Partitions, Drain: scoreDrain(cfg)}})
		if err != nil {
			return out, round, err
		}
		defer sc.kill()
		if err := sc.waitReady(pctx); err != nil {
			return out, round, err
		}
	}
	ps := &produceSpec{Brokers: cfg.Brokers, Topic: topic, Users: n, Round: round, Rate: out.OfferedPerSec,
		Duration: cfg.LatencyWarmup + cfg.LatencyWindow, SnapshotTopic: topic + ".snap", Partitions: cfg.Partitions}
	if scoring {
		ps.ChangesTopic, ps.RetargetTopic = topic+".changes", topic+".retarget"
	}
	gen, err := b.startWorker(ctx, fmt.Sprintf("u%d-l%s-load", n, pct), cfg.LoadCPUs, workerSpec{Role: roleProduce, Produce: ps})
	if err != nil {
		return out, round, err
	}
	defer gen.kill()
	if err := gen.waitReady(pctx); err != nil {
		return out, round, err
	}
	// Progress: the ingester's records consumed, toward what the generator
	// publishes over the warm-up and the window.
	unshow := b.follow(ing, shown{desc: fmt.Sprintf("bench: %s users, %s %% load: records consumed", fmtUsers(n), pct),
		total: int64(out.OfferedPerSec * (cfg.LatencyWarmup + cfg.LatencyWindow).Seconds()), unit: "ev"})
	defer unshow()
	select {
	case <-time.After(cfg.LatencyWarmup):
	case <-pctx.Done():
		return out, round, pctx.Err()
	}
	starts := []error{ing.send(cmdStart), gen.send(cmdStart)}
	if sc != nil {
		starts = append(starts, sc.send(cmdStart))
	}
	if err := errors.Join(starts...); err != nil {
		return out, round, err
	}
	windowStart := time.Now()
	// The generator says when it has stopped publishing.
	var genEnd time.Time
	for genEnd.IsZero() {
		select {
		case l, ok := <-gen.lines:
			if !ok {
				return out, round, gen.failed(errors.New("exited while publishing"))
			}
			if l.Done {
				genEnd = time.Now()
			}
		case <-pctx.Done():
			return out, round, pctx.Err()
		}
	}
	// Drain: every published record durable, then a moment for the
	// snapshot readers.
	store, err := features.NewStore(b.rdb, features.StoreConfig{Prefix: prefix, Group: group})
	if err != nil {
		return out, round, err
	}
	if err := app.WaitCaughtUp(pctx, cfg.Brokers, topic, store, 5*time.Millisecond); err != nil {
		return out, round, err
	}
	time.Sleep(500 * time.Millisecond)
	// The ingester first, then the scorer (it scores the snapshot topic
	// to its end before it reports), then the generator (it reads the
	// snapshots and the outputs).
	var ir ingestResult
	var pr produceResult
	if err := ing.stop(pctx, &ir); err != nil {
		return out, round, err
	}
	unshow()
	if sc != nil {
		var sr ScoreRun
		if err := sc.stop(pctx, &sr); err != nil {
			return out, round, err
		}
		out.Score = &sr
		b.res.Setup.ScoreGOMAXPROCS = sr.Proc.GOMAXPROCS
		if sr.Unscored > 0 {
			out.Warning = joinWarning(out.Warning, fmt.Sprintf("the scorer had %d of %d snapshots left to score %.0f s after the ingester drained: "+
				"it cannot keep up with this load on its CPUs", sr.Unscored, sr.Records, sr.DrainSeconds))
		}
	}
	if err := gen.stop(pctx, &pr); err != nil {
		return out, round, err
	}
	window := genEnd.Sub(windowStart).Seconds()
	out.PublishedPerSec = pr.Rate
	out.IngestedPerSec = float64(ir.Events) / window
	out.Durable, out.Emit = ir.Durable.Summary(), pr.Emit.Summary()
	out.Processed = ir.Processed.Summary()
	if o := pr.Outputs; o != nil {
		out.Change, out.Trigger, out.Output = o.Changes.Summary(), o.Triggers.Summary(), o.First.Summary()
		out.WindowEvents, out.EventsWithOutput = o.WindowEvents, o.EventsWithOutput
		counts := o.Counts
		out.Outputs = &counts
	}
	out.RoundTripsPerEvent = float64(ir.RoundTrips) / float64(max(ir.Events, 1))
	out.LoadsPerEvent = float64(ir.Loads) / float64(max(ir.Events, 1))
	if ir.Flushes > 0 {
		out.EventsPerFlush = float64(ir.Events) / float64(ir.Flushes)
		out.FlushMsAvg = ir.FlushSeconds * 1e3 / float64(ir.Flushes)
	}
	out.IngestCPUBusy, out.MachineBusy = ir.BusyOwn, ir.BusyAll
	out.CPUSecondsPerMillion = perMillion(ir.Proc.CPUSeconds, ir.Events)
	out.CPUUtilisation = ratio(ir.Proc.CPUSeconds, ir.Seconds)
	out.PeakRSSBytes = ir.Proc.PeakRSSBytes
	out.LoadGOMAXPROCS = pr.Proc.GOMAXPROCS
	if pr.Rate < 0.95*out.OfferedPerSec {
		out.Warning = joinWarning(out.Warning, fmt.Sprintf("the load generator published %s events/s of the %s offered: the run is load-bound, not pipeline-bound",
			fmtRate(pr.Rate), fmtRate(out.OfferedPerSec)))
	}
	return out, pr.NextRound, nil
}

// scoreDrain bounds how long the scorer may take, after the ingester has
// drained, to score the rest of a latency run's snapshots: as long as the
// window, at least 30 s (10 s with Quick).
func scoreDrain(cfg Config) time.Duration {
	if cfg.Quick {
		return max(cfg.LatencyWindow, 10*time.Second)
	}
	return max(cfg.LatencyWindow, 30*time.Second)
}

func joinWarning(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func perMillion(cpuSeconds float64, events int64) float64 {
	if events <= 0 {
		return 0
	}
	return cpuSeconds / float64(events) * 1e6
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// ---------------------------------------------------------------- Kafka

func (b *run) ensureTopics(ctx context.Context, names ...string) error {
	specs := make([]stream.TopicSpec, len(names))
	for i, n := range names {
		specs[i] = stream.TopicSpec{Name: n, Partitions: b.cfg.Partitions}
	}
	return stream.EnsureTopics(ctx, b.cfg.Brokers, specs...)
}

func (b *run) deleteTopics(ctx context.Context, names ...string) {
	if _, err := b.kc.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
		b.cfg.Logger.Warn("bench: could not delete topics", "topics", names, "err", err)
	}
}

// ---------------------------------------------------------------- Redis

// info returns an INFO section as a map.
func (b *run) info(ctx context.Context, section string) (map[string]string, error) {
	s, err := b.rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

func (b *run) usedMemory(ctx context.Context) (int64, error) {
	info, err := b.info(ctx, "memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(info["used_memory"], 10, 64)
}

// commandStats returns calls per command (INFO commandstats).
func (b *run) commandStats(ctx context.Context) (map[string]int64, error) {
	info, err := b.info(ctx, "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for k, v := range info {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if c, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(c, 10, 64)
				out[name] = n
			}
		}
	}
	return out, nil
}

// userKeys counts the user state hashes under prefix and samples the size
// of their state.
func (b *run) userKeys(ctx context.Context, prefix string) (int64, float64, error) {
	it := b.rdb.Scan(ctx, 0, prefix+":{*}:p", 1000).Iterator()
	var n, sampled, bytes int64
	for it.Next(ctx) {
		n++
		if sampled < 500 {
			l, err := b.rdb.HStrLen(ctx, it.Val(), "s").Result()
			if err != nil {
				return 0, 0, err
			}
			sampled++
			bytes += l
		}
	}
	if err := it.Err(); err != nil {
		return 0, 0, err
	}
	if sampled == 0 {
		return n, 0, nil
	}
	return n, float64(bytes) / float64(sampled), nil
}

// deletePrefix removes every key starting with prefix + ":".
func (b *run) deletePrefix(ctx context.Context, prefix string) error {
	it := b.rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	batch := make([]string, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := b.rdb.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for it.Next(ctx) {
		batch = append(batch, it.Val())
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return flush()
}
