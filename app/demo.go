package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/streamprofile/streamprofile/dashboard"
	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/progress"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/sink/scorer"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// DefaultData is the bundled REES46 sample the demo replays by default.
const DefaultData = source.EmbeddedPrefix + data.REES46Sample

// DemoConfig configures the demo. Every field states its default.
type DemoConfig struct {
	// Data is the dataset path, or "embedded:<name>". Default the bundled
	// REES46 sample.
	Data string
	// Format of Data: jsonl, rees46 or cdnow. Default: from the file name
	// (".jsonl" → jsonl, "cdnow" in the name → cdnow, else rees46).
	Format string
	// Speed is the replay speed: 0 for as fast as possible, else a multiple
	// of real time. Default 0.
	Speed float64
	// ExitWhenDone exits once the replay is ingested. Default false: keep
	// running until interrupted.
	ExitWhenDone bool
	// ReportPath receives the JSON report. Default none.
	ReportPath string
	// ProfilesOut receives every profile as JSON lines. Default none.
	ProfilesOut string
	// Brokers of an external Kafka. Default none: an in-process Kafka.
	Brokers []string
	// Redis of an external Redis. Default none: a redis-server child
	// process when one is on PATH, else in-process miniredis.
	Redis *RedisConfig
	// InProcessRedis uses the in-process miniredis even when redis-server
	// is on PATH: the demo as it runs on a machine with nothing
	// installed. Default false.
	InProcessRedis bool
	// Partitions of the clickstream topic. Default 3.
	Partitions int
	// Group is the consumer group. Default "streamprofile-demo".
	Group string
	// Prefix for Redis keys. Default "sp".
	Prefix string
	// Pipeline configures the topology.
	Pipeline pipeline.Config
	// Progress receives progress output. Default os.Stderr.
	Progress io.Writer
	// Logger for operational logs. Default slog.Default().
	Logger *slog.Logger
	// HTTPAddr is the listen address of the live dashboard (package
	// dashboard), served until the demo ends. Default "": none; "off"
	// also disables it. The demo command defaults it to localhost:8080.
	HTTPAddr string
	// AdminAddr is the listen address of /metrics, /healthz, /readyz and
	// /debug/pprof/. Default "": none; "off" also disables it.
	AdminAddr string
	// Tracing traces every replayed record through the pipeline
	// (observability.SetupTracing reads OTEL_*). Default nil: off.
	Tracing trace.TracerProvider
	// PseudonymKeyFile holds the HMAC keys of the id pseudonyms (package
	// privacy); profiles are stored, and looked up on the dashboard, by
	// pseudonym. Default none: ids are stored as they are.
	PseudonymKeyFile string
	// OnReady, when set, is called once Kafka, Redis, the ingester and the
	// dashboard are up, before the replay starts. Default none.
	OnReady func(DemoInfo)
	// OnDone, when set, is called once the demo has finished without error
	// and its roles have stopped, before the Kafka and Redis it started
	// are shut down: the place to read back what it wrote. It receives
	// where the parts are and the scorer's counters as they ended (nil
	// with NoScore): Report.Scoring is read after the drain, while the
	// scorer still runs and timers may yet fire; these count every change
	// and trigger the scorer emitted. Default none.
	OnDone func(DemoInfo, *ScoringReport)
	// NoTrain runs the demo without the trainer. Default false: the
	// trainer learns from the replay and the report carries its metrics.
	NoTrain bool
	// Trainer configures the trainer (horizons, architecture, gate).
	// Default: the trainer's defaults, with the purchase horizon from
	// PurchaseHorizon.
	Trainer trainer.Config
	// NoScore runs the demo without the scorer (segments and triggers).
	// Default false.
	NoScore bool
	// SegmentsFile is the segment catalogue. Default the built-in one.
	SegmentsFile string
	// IdleRate is how fast event time runs on an idle partition of the
	// scorer, as a multiple of real time, once the replay stops feeding
	// it; Drain is how long the demo waits after the replay for timers to
	// fire. Defaults 600 and 5s.
	IdleRate float64
	Drain    time.Duration
	// PurchaseHorizon is the purchase-propensity horizon. Default the
	// trainer's (30m); the demo command sets 5m for the bundled sample.
	PurchaseHorizon time.Duration
}

// DemoInfo says where a running demo's parts are.
type DemoInfo struct {
	// Brokers of the demo's Kafka and Redis address.
	Brokers []string
	Redis   string
	// DashboardURL is the live dashboard's address ("" when off).
	DashboardURL string
	// Dashboard is the live dashboard (nil when off), for the parts that
	// record segment changes and triggers on it.
	Dashboard *dashboard.Server
	// Admin holds the metrics and readiness checks (Admin.Addr: where they
	// are served, once listening).
	Admin *Admin
}

// listenAddr reports whether addr asks for a listener ("" and "off" do
// not).
func listenAddr(addr string) bool {
	a := strings.ToLower(strings.TrimSpace(addr))
	return a != "" && a != AdminOff && a != "-"
}

// Report is the demo's JSON report.
type Report struct {
	Data              string           `json:"data"`
	Format            string           `json:"format"`
	Kafka             string           `json:"kafka"`
	Redis             string           `json:"redis"`
	Partitions        int              `json:"partitions"`
	EventsRead        int64            `json:"events_read"`
	SkippedLines      int64            `json:"skipped_lines"`
	Consumed          int64            `json:"consumed"`
	Valid             int64            `json:"valid"`
	Applied           int64            `json:"applied"`
	Deduplicated      int64            `json:"deduplicated"`
	DeadLettered      int64            `json:"dead_lettered"`
	DeadLetterReasons map[string]int64 `json:"dead_letter_reasons"`
	PIIMasked         int64            `json:"pii_masked"`
	Users             int              `json:"users"`
	RedisFlushes      int64            `json:"redis_flushes"`
	RedisRoundTrips   int64            `json:"redis_round_trips"`
	RoundTripsPerEvt  float64          `json:"redis_round_trips_per_event"`
	FirstEventTime    time.Time        `json:"first_event_time"`
	LastEventTime     time.Time        `json:"last_event_time"`
	ReplaySeconds     float64          `json:"replay_seconds"`
	// IngestSeconds runs from the start to the moment the ingester had
	// caught up with the replay; EventsPerSecond is events consumed over
	// it. WallSeconds is the whole run (training and scoring included).
	IngestSeconds   float64 `json:"ingest_seconds"`
	WallSeconds     float64 `json:"wall_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	// Training is the trainer's report (absent with NoTrain).
	Training *TrainingReport `json:"training,omitempty"`
	// Scoring is the scorer's report (absent with NoScore).
	Scoring *ScoringReport `json:"scoring,omitempty"`
}

// ScoringReport is the scorer's part of the demo report.
type ScoringReport struct {
	Snapshots int64 `json:"snapshots"`
	Timers    int64 `json:"timers"`
	// Segments: current members, enters and exits per segment.
	Segments map[string]scorer.SegmentStats `json:"segments"`
	// Triggers emitted per kind; Suppressed per reason (cap, consent,
	// quiet, expired) and kind.
	Triggers   map[string]int64            `json:"triggers"`
	Suppressed map[string]map[string]int64 `json:"suppressed"`
	// Latency from event ingestion (the clickstream record's Kafka append
	// time) to the emitted change or trigger, acknowledged, and how many
	// were measured (triggers fired by timers are not: they wait for event
	// time by design).
	ChangeLatencyCount  int64   `json:"change_latency_count"`
	TriggerLatencyCount int64   `json:"trigger_latency_count"`
	ChangeLatencyP50Ms  float64 `json:"change_latency_p50_ms"`
	ChangeLatencyP99Ms  float64 `json:"change_latency_p99_ms"`
	TriggerLatencyP50Ms float64 `json:"trigger_latency_p50_ms"`
	TriggerLatencyP99Ms float64 `json:"trigger_latency_p99_ms"`
	ModelVersion        int64   `json:"model_version"`
}

func scoringReport(st scorer.Stats) *ScoringReport {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return &ScoringReport{
		Snapshots: st.Snapshots, Timers: st.Timers, Segments: st.Segments, Triggers: st.Triggers, Suppressed: st.Suppressed,
		ChangeLatencyCount: st.ChangeLatency.Count, TriggerLatencyCount: st.TriggerLatency.Count,
		ChangeLatencyP50Ms: ms(st.ChangeLatency.P50), ChangeLatencyP99Ms: ms(st.ChangeLatency.P99),
		TriggerLatencyP50Ms: ms(st.TriggerLatency.P50), TriggerLatencyP99Ms: ms(st.TriggerLatency.P99),
		ModelVersion: st.ModelVersion,
	}
}

// TrainingReport is the trainer's part of the demo report.
type TrainingReport struct {
	// Tasks reports each task: examples, positives and the network's
	// prequential metrics, and the same metrics for each baseline.
	Tasks             map[string]TaskReport `json:"tasks"`
	Versions          int64                 `json:"versions"`
	Promotions        int64                 `json:"promotions"`
	Rollbacks         int64                 `json:"rollbacks"`
	Champion          int64                 `json:"champion"`
	ExamplesPerSecond float64               `json:"trainer_examples_per_second"`
	Curve             []trainer.CurvePoint  `json:"learning_curve"`
}

// TaskReport is one task of the training report. Metrics are prequential:
// every example was scored before its label was known, over the trainer's
// evaluation window; null where undefined (one class only).
type TaskReport struct {
	// Evaluated and EvaluatedPositives count the window the prequential
	// metrics were computed over.
	Evaluated          int64                       `json:"evaluated"`
	EvaluatedPositives int64                       `json:"evaluated_positives"`
	Examples           int64                       `json:"examples"`
	Positives          int64                       `json:"positives"`
	Trained            int64                       `json:"trained"`
	PrequentialAUC     registry.Float              `json:"prequential_auc"`
	LogLoss            registry.Float              `json:"logloss"`
	ECE                registry.Float              `json:"ece"`
	Baselines          map[string]registry.Metrics `json:"baselines"`
}

// trainingReport builds the training report from the trainer's stats.
func trainingReport(st trainer.Stats) *TrainingReport {
	r := &TrainingReport{Tasks: map[string]TaskReport{}, Versions: st.Versions, Promotions: st.Promotions,
		Rollbacks: st.Rollbacks, Champion: st.Champion, ExamplesPerSecond: st.ExamplesPerSecond, Curve: st.Curve}
	for name, ts := range st.Tasks {
		nan := registry.Float(math.NaN())
		tr := TaskReport{Examples: ts.Examples, Positives: ts.Positives, Trained: ts.Trained, Baselines: map[string]registry.Metrics{},
			PrequentialAUC: nan, LogLoss: nan, ECE: nan}
		if m, ok := ts.Models[trainer.ModelNetwork]; ok {
			tr.PrequentialAUC, tr.LogLoss, tr.ECE = m.AUC, m.LogLoss, m.ECE
			tr.Evaluated, tr.EvaluatedPositives = m.Examples, m.Positives
		}
		for _, b := range []string{trainer.ModelRecency, trainer.ModelLogistic, trainer.ModelBGNBD, trainer.ModelChampion} {
			if m, ok := ts.Models[b]; ok {
				tr.Baselines[b] = m
			}
		}
		r.Tasks[name] = tr
	}
	return r
}

func detectFormat(path string) source.Format {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.HasSuffix(base, ".jsonl") || strings.HasSuffix(base, ".jsonl.gz"):
		return source.JSONL
	case strings.Contains(base, "cdnow"):
		return source.CDNOW
	}
	return source.REES46
}

// replaySource adapts a dataset reader to stream.ReplaySource.
type replaySource struct {
	r source.Reader
}

func (s replaySource) Next() (stream.ReplayRecord, error) {
	rec, err := s.r.Next()
	if err != nil {
		var le *source.LineError
		if errors.As(err, &le) {
			if len(rec.Value) > 0 {
				// A bad jsonl line is published as it is: the pipeline
				// dead-letters it with its reason.
				return stream.ReplayRecord{Value: rec.Value}, nil
			}
			return stream.ReplayRecord{}, &stream.SkipError{Err: err}
		}
		return stream.ReplayRecord{}, err
	}
	return stream.ReplayRecord{Key: []byte(rec.Event.ProfileKey()), Value: rec.Value, Time: rec.Event.TS}, nil
}

// countRecords counts the dataset's records for the progress total.
func countRecords(format source.Format, path string) int64 {
	r, c, err := source.Open(format, path)
	if err != nil {
		return 0
	}
	defer c.Close()
	var n int64
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		var le *source.LineError
		if err != nil && !errors.As(err, &le) {
			return n
		}
		n++
	}
}

// RunDemo runs the demo: embedded (or given) Kafka and Redis, an ingester,
// and a replay of the dataset.
func RunDemo(ctx context.Context, cfg DemoConfig) (*Report, error) {
	start := time.Now()
	if cfg.Data == "" {
		cfg.Data = DefaultData
	}
	format := detectFormat(strings.TrimPrefix(cfg.Data, source.EmbeddedPrefix))
	if cfg.Format != "" {
		f, err := source.ParseFormat(cfg.Format)
		if err != nil {
			return nil, err
		}
		format = f
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 3
	}
	if cfg.IdleRate <= 0 {
		cfg.IdleRate = 600
	}
	if cfg.Group == "" {
		cfg.Group = "streamprofile-demo"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Progress == nil {
		cfg.Progress = os.Stderr
	}
	log := cfg.Logger
	rep := &Report{Data: cfg.Data, Format: string(format), Partitions: cfg.Partitions}

	// Check the dataset opens before starting anything.
	rd, closer, err := source.Open(format, cfg.Data)
	if err != nil {
		return nil, err
	}
	defer closer.Close()

	brokers := cfg.Brokers
	rep.Kafka = "external"
	if len(brokers) == 0 {
		k, err := StartEmbeddedKafka()
		if err != nil {
			return nil, err
		}
		defer k.Close()
		brokers = k.Brokers()
		rep.Kafka = "embedded (kfake)"
	}
	var rcfg RedisConfig
	rep.Redis = "external"
	if cfg.Redis != nil {
		rcfg = *cfg.Redis
	} else {
		rs, err := StartRedis(ctx, !cfg.InProcessRedis, log)
		if err != nil {
			return nil, err
		}
		defer rs.Close()
		rcfg = RedisConfig{Addr: rs.Addr}
		rep.Redis = rs.Kind
	}
	fmt.Fprintf(cfg.Progress, "streamprofile demo: Kafka %s at %s, Redis %s at %s, replaying %s (%s)\n",
		rep.Kafka, strings.Join(brokers, ","), rep.Redis, rcfg.Addr, cfg.Data, format)

	adminAddr := cfg.AdminAddr
	if !listenAddr(adminAddr) {
		adminAddr = AdminOff // metrics are still collected, for the dashboard
	}
	admin, err := NewAdmin(AdminConfig{Addr: adminAddr, Logger: log})
	if err != nil {
		return nil, err
	}
	in, err := NewIngester(IngestConfig{
		Brokers: brokers, Group: cfg.Group, Partitions: cfg.Partitions, CreateTopics: true,
		Redis: rcfg, Store: features.StoreConfig{Prefix: cfg.Prefix}, Pipeline: cfg.Pipeline, Logger: log,
		PseudonymKeyFile: cfg.PseudonymKeyFile, Telemetry: Telemetry{Tracing: cfg.Tracing, Admin: admin},
	})
	if err != nil {
		return nil, err
	}
	defer in.Close()
	topo := in.Topology()
	if err := stream.EnsureTopics(ctx, brokers, in.Topics()...); err != nil {
		return nil, err
	}
	var tr *Trainer
	var trainHorizon time.Duration // the trainer's purchase horizon
	if !cfg.NoTrain {
		tcfg := cfg.Trainer
		if cfg.PurchaseHorizon > 0 {
			tcfg.PurchaseHorizon = cfg.PurchaseHorizon
		}
		trainHorizon = tcfg.WithDefaults().PurchaseHorizon
		// A replay lasts seconds: cut versions and judge challengers
		// on a demo's scale, not a production one.
		if tcfg.CheckpointBatches == 0 {
			tcfg.CheckpointBatches = 10
		}
		if tcfg.CheckpointInterval == 0 {
			tcfg.CheckpointInterval = 2 * time.Second
		}
		if tcfg.Gate.Examples == 0 {
			tcfg.Gate.Examples = 1000
		}
		if tcfg.Gate.MinExamples == 0 {
			tcfg.Gate.MinExamples = 100
		}
		tr, err = NewTrainer(TrainerConfig{
			Brokers: brokers, Topic: pipeline.DefaultSnapshotTopic, Group: cfg.Group + "-trainer",
			Partitions: cfg.Partitions, CreateTopics: true,
			Registry: RegistryConfig{Redis: rcfg, Prefix: cfg.Prefix}, Trainer: tcfg,
			Prefix: cfg.Prefix, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		defer tr.Close()
	}
	var sc *Scorer
	if !cfg.NoScore {
		sc, err = NewScorer(ScoreConfig{
			Brokers: brokers, Group: cfg.Group + "-scorer", Partitions: cfg.Partitions, CreateTopics: true,
			Redis: rcfg, Registry: RegistryConfig{Redis: rcfg, Prefix: cfg.Prefix}, SegmentsFile: cfg.SegmentsFile,
			MembersInterval: time.Second,
			Scorer: scorer.Config{Topic: pipeline.DefaultSnapshotTopic, Prefix: cfg.Prefix,
				// The replayed history ends abruptly: once a partition is
				// idle for a second, let event time run 600× faster so
				// abandonment timers (30 minutes) fire within seconds.
				IdleAfter: time.Second, IdleRate: cfg.IdleRate, Tick: 250 * time.Millisecond},
			Logger: log,
		})
		if err != nil {
			return nil, err
		}
		defer sc.Close()
	}
	replayed := &ReplayProgress{}
	info := DemoInfo{Brokers: brokers, Redis: rcfg.Addr, Admin: admin}
	var dashLn net.Listener
	if listenAddr(cfg.HTTPAddr) {
		ps, _, err := Privacy(cfg.PseudonymKeyFile, true)
		if err != nil {
			return nil, err
		}
		info.Dashboard, err = dashboard.New(dashboard.Config{
			Addr:     cfg.HTTPAddr,
			Source:   demoSource(topo, in, admin, replayed, tr, sc),
			Profiles: StoreProfiles(in.Store(), ps, topo.Config().Features),
			Title:    "streamprofile demo", Logger: log,
		})
		if err != nil {
			return nil, err
		}
		var lc net.ListenConfig
		if dashLn, err = lc.Listen(ctx, "tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("demo: dashboard (--http-addr, \"off\" disables it): %w", err)
		}
		info.DashboardURL = "http://" + dashLn.Addr().String() + "/"
	}

	runCtx, stopIngest := context.WithCancel(ctx)
	defer stopIngest()
	g, gctx := errgroup.WithContext(runCtx)
	// Whatever path returns, the roles have stopped before the deferred
	// Closes above release what they use (Wait is idempotent).
	defer func() {
		stopIngest()
		_ = g.Wait()
	}()
	// stopped stops the roles once gctx has ended early: the error of the
	// role that failed, else ctx's.
	stopped := func() error {
		stopIngest()
		if werr := g.Wait(); werr != nil {
			return werr
		}
		return ctx.Err()
	}
	// The consumers run alongside the replay: their progress lines count
	// from here, not from when the demo starts waiting for them.
	running := time.Now()
	g.Go(func() error { return in.Run(gctx) })
	if tr != nil {
		g.Go(func() error { return tr.Run(gctx) })
	}
	if sc != nil {
		g.Go(func() error { return sc.Run(gctx) })
		if info.Dashboard != nil {
			g.Go(func() error { return feedDashboard(gctx, brokers, sc, info.Dashboard, log) })
		}
	}
	g.Go(func() error {
		return admin.Serve(gctx, func(ctx context.Context) error { <-ctx.Done(); return nil })
	})
	if info.Dashboard != nil {
		g.Go(func() error { return info.Dashboard.Serve(gctx, dashLn) })
		fmt.Fprintf(cfg.Progress, "dashboard: %s\n", info.DashboardURL)
	}
	if cfg.OnReady != nil {
		cfg.OnReady(info)
	}

	producer, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	total := countRecords(format, cfg.Data)
	replayed.Start(total)
	bar := progress.New("replay", total, progress.Options{Out: cfg.Progress})
	src, err := replayOrder(format, rd, false)
	if err != nil {
		return nil, err
	}
	rst, err := stream.Replay(gctx, producer, progressSource{src, replayed}, stream.ReplayConfig{
		Topic: topo.Config().Topic, Speed: cfg.Speed,
		Headers:  ReplayHeaders(cfg.Tracing, topo.Config().Topic),
		Progress: func(n int64) { bar.Set(n); replayed.Published(n) },
	})
	bar.Done()
	if err != nil {
		stopIngest()
		_ = g.Wait()
		return nil, fmt.Errorf("demo: replay: %w", err)
	}
	replayed.Done()
	rep.EventsRead = rst.Published + rst.Skipped
	rep.SkippedLines = rst.Skipped
	rep.FirstEventTime, rep.LastEventTime = rst.First.UTC(), rst.Last.UTC()
	rep.ReplaySeconds = rst.Wall.Seconds()

	// Wait until the ingester has made everything durable.
	ing := progress.New("ingest", rst.Published, progress.Options{Out: cfg.Progress, Start: running})
	var seen int64
	for {
		lagErr := WaitCaughtUp(gctx, brokers, topo.Config().Topic, in.Store(), 100*time.Millisecond)
		c := topo.Stats().Consumed.Load()
		ing.Add(c - seen)
		seen = c
		if lagErr == nil {
			break
		}
		if gctx.Err() != nil {
			return nil, stopped()
		}
	}
	ing.Done()
	fillReport(rep, topo.Stats(), start)
	if tr != nil {
		// The trainer has learnt from everything once its group has
		// consumed the whole snapshot topic.
		if err := waitConsumed(gctx, brokers, pipeline.DefaultSnapshotTopic, tr.Group(), progress.New("train", 0, progress.Options{Out: cfg.Progress, Start: running}),
			func() int64 { st := tr.Stats(); return st.Snapshots + st.Duplicates + st.BadSnapshots }); err != nil {
			return nil, stopped()
		}
		// The replay is a finite history: let event time pass the purchase
		// horizon after its end, so that its last examples mature (as
		// negatives unless their purchase came) instead of staying
		// pending; on REES46 the network needs about 12,000 matured
		// examples to beat chance, and the history holds 17,434.
		if _, err := tr.Learner().AdvanceTime(trainHorizon); err != nil {
			log.Warn("demo: advancing the trainer's event time failed", "err", err)
		}
		// Cut a version with everything learnt, so the report and the
		// profiles carry the final model.
		if _, err := tr.Learner().Checkpoint(gctx); err != nil {
			log.Warn("demo: final checkpoint failed", "err", err)
		}
		rep.Training = trainingReport(tr.Stats())
		rep.WallSeconds = time.Since(start).Seconds()
	}
	if sc != nil {
		if err := waitConsumed(gctx, brokers, pipeline.DefaultSnapshotTopic, sc.Group(), progress.New("score", 0, progress.Options{Out: cfg.Progress, Start: running}),
			func() int64 { return sc.Stats().Snapshots }); err != nil {
			return nil, stopped()
		}
		// Let the idle clock run so that time-relative segments and
		// abandonment triggers fire, then read the member counts (read
		// from the indexes every second).
		drain := cfg.Drain
		if drain <= 0 {
			drain = 5 * time.Second
		}
		fmt.Fprintf(cfg.Progress, "score: letting event time run on (%.0f× real time) for %s so timers fire\n", max(cfg.IdleRate, 600), drain)
		select {
		case <-gctx.Done():
		case <-time.After(drain + 1100*time.Millisecond):
		}
		rep.Scoring = scoringReport(sc.Stats())
		rep.WallSeconds = time.Since(start).Seconds()
	}

	if cfg.ProfilesOut != "" {
		f, err := os.Create(cfg.ProfilesOut)
		if err != nil {
			return nil, err
		}
		var extra func(string, *features.State, *ProfileLine) error
		if sc != nil {
			var reg *registry.Registry
			if tr != nil {
				reg = tr.Registry()
			}
			extra = profileScores(ctx, sc, reg, rst.Last, topo.Config().Features, log)
		}
		n, err := DumpProfiles(ctx, in.Store(), rst.Last, topo.Config().Features, f, extra)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("demo: profiles: %w", err)
		}
		rep.Users = n
	} else {
		n := 0
		if err := ScanUsers(ctx, in.Store(), func(string) error { n++; return nil }); err != nil {
			return nil, err
		}
		rep.Users = n
	}
	if cfg.ReportPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(cfg.ReportPath, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	printSummary(cfg.Progress, rep)
	if rep.Training != nil {
		printTraining(cfg.Progress, rep.Training)
	}
	if rep.Scoring != nil {
		printScoring(cfg.Progress, rep.Scoring)
	}
	if !cfg.ExitWhenDone {
		fmt.Fprintln(cfg.Progress, "demo: replay ingested; still consuming. Press Ctrl-C to stop.")
		if info.Dashboard != nil {
			fmt.Fprintf(cfg.Progress, "dashboard: %s\n", info.DashboardURL)
		}
		select {
		case <-ctx.Done():
		case <-gctx.Done(): // a part failed: Wait reports it
		}
	}
	stopIngest()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return rep, err
	}
	if cfg.OnDone != nil {
		var final *ScoringReport
		if sc != nil {
			final = scoringReport(sc.Stats())
		}
		cfg.OnDone(info, final)
	}
	return rep, nil
}

// waitConsumed waits until group has joined and processed every record
// of topic appended so far (the caller waits until nothing more is
// appended), counting consumed on p as it goes. It compares the group's
// positions with end offsets read from the broker on every poll: the
// group's own lag is as of its latest fetch, and a fetch from before the
// last records were appended made it look caught up early. It answers
// ctx's error if ctx ends first.
func waitConsumed(ctx context.Context, brokers []string, topic string, group *stream.Group, p *progress.Reporter, consumed func() int64) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	var last int64
	for {
		n := consumed()
		p.Add(n - last)
		last = n
		if group.Joined() {
			done, err := processedAll(ctx, client, topic, group.Positions())
			if err == nil && done {
				p.Done()
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processedAll reports whether pos (next offset per partition, -1 while
// unknown) covers every partition of topic up to its end offset.
func processedAll(ctx context.Context, client *kafka.Client, topic string, pos map[int]int64) (bool, error) {
	offsets, err := topicOffsets(ctx, client, topic)
	if err != nil {
		return false, err
	}
	for _, po := range offsets {
		next, ok := pos[po.Partition]
		switch {
		case po.LastOffset <= po.FirstOffset: // empty: nothing to process
		case !ok || next < po.LastOffset: // not ours yet, unknown (-1) or behind
			return false, nil
		}
	}
	return true, nil
}

// demoSource is the dashboard's view of the demo's parts.
func demoSource(topo *pipeline.Topology, in *Ingester, admin *Admin, replayed *ReplayProgress, tr *Trainer, sc *Scorer) *DemoSource {
	src := &DemoSource{Topology: topo, Group: in.Group(), Registry: admin.Registry(), Replay: replayed}
	if tr != nil {
		src.Trainer = tr
	}
	if sc != nil {
		src.SegmentSizes = func() []dashboard.Segment {
			st := sc.Stats()
			out := make([]dashboard.Segment, 0, len(st.Segments))
			for name, s := range st.Segments {
				out = append(out, dashboard.Segment{Name: name, Members: s.Members})
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			return out
		}
	}
	return src
}

// feedDashboard shows the newest segment changes and triggers on the page,
// read back from their topics as any consumer would.
func feedDashboard(ctx context.Context, brokers []string, sc *Scorer, d *dashboard.Server, log *slog.Logger) error {
	cfg := sc.Core().Config()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "streamprofile-demo-dashboard",
		GroupTopics: []string{cfg.ChangesTopic, cfg.RetargetTopic}, StartOffset: kafka.FirstOffset, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Debug("demo: dashboard feed", "err", err)
			continue
		}
		switch m.Topic {
		case cfg.ChangesTopic:
			var c scorer.SegmentChange
			if json.Unmarshal(m.Value, &c) == nil {
				d.RecordChange(dashboard.Change{Time: c.At, User: c.UserID, Segment: c.Segment, Change: c.Change, Reason: changeReason(c.Reason)})
			}
		case cfg.RetargetTopic:
			var t scorer.Trigger
			if json.Unmarshal(m.Value, &t) == nil {
				d.RecordTrigger(dashboard.Trigger{Time: t.At, User: t.UserID, Kind: t.Kind, Explanation: triggerExplanation(t)})
			}
		}
	}
}

func changeReason(r scorer.ChangeReason) string {
	if r.Rule == "" {
		return r.Note
	}
	names := make([]string, 0, len(r.Values))
	for k := range r.Values {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(r.Rule)
	b.WriteString(" with ")
	for i, k := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%v", k, r.Values[k])
	}
	return b.String()
}

func triggerExplanation(t scorer.Trigger) string {
	var b strings.Builder
	if t.Score.Value != nil {
		fmt.Fprintf(&b, "%s %.2f", t.Score.Name, *t.Score.Value)
	}
	for i, c := range t.Explanation {
		if i == 3 {
			break
		}
		fmt.Fprintf(&b, "; %s %+.3f", c.Label, c.Contribution)
	}
	if len(t.Items) > 0 {
		fmt.Fprintf(&b, "; recommends %s", t.Items[0].Item)
	}
	return strings.TrimPrefix(b.String(), "; ")
}

// printTraining prints the training summary and a concise learning curve.
func printTraining(w io.Writer, t *TrainingReport) {
	fmt.Fprintf(w, "training: %d versions, %d promotions, %d rollbacks, champion v%d, %.0f examples/s\n",
		t.Versions, t.Promotions, t.Rollbacks, t.Champion, t.ExamplesPerSecond)
	names := make([]string, 0, len(t.Tasks))
	for n := range t.Tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		tk := t.Tasks[n]
		fmt.Fprintf(w, "  %-20s examples %6d positives %5d trained %6d  prequential AUC over the last %d (%d positive): network %s",
			n, tk.Examples, tk.Positives, tk.Trained, tk.Evaluated, tk.EvaluatedPositives, fmtF(tk.PrequentialAUC))
		for _, b := range []string{trainer.ModelRecency, trainer.ModelLogistic, trainer.ModelBGNBD} {
			if m, ok := tk.Baselines[b]; ok {
				fmt.Fprintf(w, ", %s %s", b, fmtF(m.AUC))
			}
		}
		fmt.Fprintln(w)
		if tk.Evaluated > 0 && tk.EvaluatedPositives < 20 {
			fmt.Fprintf(w, "  (%s: only %d positives evaluated — too few for the AUC to mean much)\n", n, tk.EvaluatedPositives)
		}
	}
	var curve []trainer.CurvePoint
	for _, p := range t.Curve {
		if len(p.AUC) > 0 {
			curve = append(curve, p)
		}
	}
	if len(curve) == 0 {
		return
	}
	fmt.Fprintln(w, "learning curve (prequential AUC by examples evaluated):")
	step := max(1, len(curve)/8)
	for i := 0; i < len(curve); i += step {
		p := curve[i]
		models := make([]string, 0, len(p.AUC))
		for m := range p.AUC {
			models = append(models, m)
		}
		sort.Strings(models)
		fmt.Fprintf(w, "  %7d", p.Evaluated)
		for _, m := range models {
			fmt.Fprintf(w, "  %s %.3f", m, p.AUC[m])
		}
		fmt.Fprintln(w)
	}
}

// profileScores adds to each profile line the scores at `at`: the
// network's and the BG/NBD / Gamma-Gamma ones, with the model version,
// exactly as the scorer computes them for a snapshot taken at that time.
// They come from the champion, or — when the gate has promoted nothing yet
// — from the latest version the trainer cut, and each line says which
// ("model_status": "champion" or "latest, not promoted").
func profileScores(ctx context.Context, sc *Scorer, reg *registry.Registry, at time.Time, fcfg features.Config, log *slog.Logger) func(string, *features.State, *ProfileLine) error {
	served, status := sc.Champion().Load(), "champion"
	if served == nil && reg != nil {
		if meta, err := reg.Meta(ctx); err == nil && meta.Latest > 0 {
			v, verr := reg.Get(ctx, meta.Latest)
			m, merr := reg.Model(ctx, meta.Latest)
			if verr == nil && merr == nil {
				if s, err := registry.NewServed(v, m); err == nil {
					served, status = s, "latest, not promoted"
				}
			}
		}
	}
	if served == nil {
		log.Warn("demo: no model version to score profiles with")
	}
	return func(user string, st *features.State, line *ProfileLine) error {
		p := st.Evaluate(at, &fcfg)
		snap := features.Snapshot{Version: features.SnapshotVersion, ID: "profiles-out", User: user, TS: at,
			Type: string(stream.TypeView), Features: p.Vector.Map(), AdsOff: st.AdsOff}
		if len(p.Affinities) > 0 {
			snap.Tokens = map[string][]string{}
			for d, list := range p.Affinities {
				for _, a := range list {
					snap.Tokens[d] = append(snap.Tokens[d], a.Name)
				}
			}
		}
		res, err := sc.Core().ScoreWith(&snap, served)
		if err != nil {
			return nil // no model: the line goes without scores
		}
		line.Scores = map[string]any{"model_version": res.ModelVersion}
		if served != nil {
			line.Scores["model_status"] = status
		}
		for _, name := range []string{"purchase_propensity", "repeat_purchase_90d", "churn_risk", "p_alive", "expected_purchases_90d", "clv_90d"} {
			if v, ok := res.Scores[name]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				line.Scores[name] = v
			} else {
				line.Scores[name] = nil
			}
		}
		return nil
	}
}

// printScoring prints the segment and trigger summary.
func printScoring(w io.Writer, r *ScoringReport) {
	lat := func(n int64, p50, p99 float64) string {
		if n == 0 {
			return "none measured"
		}
		return fmt.Sprintf("p50 %.0f ms p99 %.0f ms (%d)", p50, p99, n)
	}
	fmt.Fprintf(w, "scoring: %d snapshots, %d timers, model v%d; ingest → change %s, ingest → event-driven trigger %s (timer-driven triggers fire when event time passes, not on ingestion)\n",
		r.Snapshots, r.Timers, r.ModelVersion, lat(r.ChangeLatencyCount, r.ChangeLatencyP50Ms, r.ChangeLatencyP99Ms),
		lat(r.TriggerLatencyCount, r.TriggerLatencyP50Ms, r.TriggerLatencyP99Ms))
	names := make([]string, 0, len(r.Segments))
	for n := range r.Segments {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprint(w, "  segments (members/enters/exits):")
	for _, n := range names {
		s := r.Segments[n]
		if s.Members+s.Enters+s.Exits > 0 {
			fmt.Fprintf(w, " %s %d/%d/%d", n, s.Members, s.Enters, s.Exits)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  triggers: %v; suppressed: %v\n", r.Triggers, r.Suppressed)
}

func fmtF(f registry.Float) string {
	if math.IsNaN(float64(f)) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", float64(f))
}

func fillReport(rep *Report, st *pipeline.Stats, start time.Time) {
	rep.Consumed = st.Consumed.Load()
	rep.Valid = st.Valid.Load()
	rep.Applied = st.Applied.Load()
	rep.Deduplicated = st.Duplicates.Load()
	rep.DeadLettered = st.DeadLetter.Load()
	rep.PIIMasked = st.PIIMasked.Load()
	rep.DeadLetterReasons = map[string]int64{}
	for r, n := range st.DeadLetterByReason() {
		rep.DeadLetterReasons[string(r)] = n
	}
	rep.RedisFlushes = st.Flushes.Load()
	rep.RedisRoundTrips = st.RoundTrips()
	if rep.Consumed > 0 {
		rep.RoundTripsPerEvt = float64(rep.RedisRoundTrips) / float64(rep.Consumed)
	}
	rep.IngestSeconds = time.Since(start).Seconds()
	rep.WallSeconds = rep.IngestSeconds
	if rep.IngestSeconds > 0 {
		rep.EventsPerSecond = float64(rep.Consumed) / rep.IngestSeconds
	}
}

func printSummary(w io.Writer, r *Report) {
	fmt.Fprintf(w, "\nevents read %d, valid %d, applied %d, deduplicated %d, dead-lettered %d\n",
		r.EventsRead, r.Valid, r.Applied, r.Deduplicated, r.DeadLettered)
	fmt.Fprintf(w, "users %d, Redis flushes %d, round trips/event %.4f, ingest %.2fs (%.0f events/s), wall %.2fs\n",
		r.Users, r.RedisFlushes, r.RoundTripsPerEvt, r.IngestSeconds, r.EventsPerSecond, r.WallSeconds)
}
