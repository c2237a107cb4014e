package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/sink/scorer"
)

// ScorerStatsInterval is how often the scorer's statistics are exported to
// the metrics.
const ScorerStatsInterval = 5 * time.Second

// ErrNoChampion is the readiness error of the "model" check while the
// scorer has no champion model loaded.
var ErrNoChampion = errors.New("no champion model loaded yet")

// ServeScorer runs the score role s (Scorer.Run) with a's listener beside
// it (see InstrumentScorer for what a gets). A nil a runs s alone. For the
// traces and the latency histogram, s must have been created with a in
// ScoreConfig.Telemetry.
func ServeScorer(ctx context.Context, s *Scorer, a *Admin) error {
	if a == nil {
		return s.Run(ctx)
	}
	export, err := InstrumentScorer(s, a)
	if err != nil {
		return err
	}
	return a.Serve(ctx, func(ctx context.Context) error {
		// The last export follows Run's return: its final flush and
		// member count are in it.
		ectx, stopExport := context.WithCancel(context.WithoutCancel(ctx))
		exported := make(chan error, 1)
		go func() { exported <- export(ectx) }()
		err := s.Run(ctx)
		stopExport()
		return errors.Join(err, <-exported)
	})
}

// InstrumentScorer registers s with a: the consumer lag of the snapshot
// topic on a's metrics, and the readiness checks "scorer-partitions"
// (joined and caught up), "scorer-redis" (the profile Redis answers) and
// "model" (a champion is loaded). It returns export, which exports s's
// statistics to a's metrics every ScorerStatsInterval until ctx is done
// and once more then: segment members (as last read, every
// ScoreConfig.MembersInterval), segment changes, triggers emitted and
// suppressed, and the champion version per task. ServeScorer uses it; a
// process that serves a already calls it and runs export beside
// Scorer.Run. It fails when a's registry already exports the lag of the
// snapshot topic (another role of the process reading it).
func InstrumentScorer(s *Scorer, a *Admin) (export func(context.Context) error, err error) {
	if err := a.Metrics().RegisterLag(s.core.Config().Topic, s.group.Assigned); err != nil {
		return nil, fmt.Errorf("score: metrics: %w", err)
	}
	a.AddCheck(GroupCaughtUp("scorer-partitions", s.group, a.Config().MaxLag))
	a.AddCheck(RedisReachable("scorer-redis", s.rdb))
	a.AddCheck(ModelLoaded(func() error {
		if s.champion.Load() == nil {
			return ErrNoChampion
		}
		return nil
	}))
	exp := newScorerExporter(a.Metrics())
	once := func() {
		var tasks []string
		if sv := s.champion.Load(); sv != nil {
			tasks = sv.Version.Arch.Heads
		}
		exp.export(s.Stats(), tasks)
	}
	return exportEvery(ScorerStatsInterval, once), nil
}

// exportEvery returns a loop that calls export every interval until ctx is
// done and once more then.
func exportEvery(interval time.Duration, export func()) func(context.Context) error {
	return func(ctx context.Context) error {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				export()
				return nil
			case <-tick.C:
				export()
			}
		}
	}
}

// scorerExporter turns scorer.Stats snapshots into metric updates; its
// maps remember what the counters were given already.
type scorerExporter struct {
	m          *observability.Metrics
	changes    map[[2]string]int64 // segment, change
	triggers   map[string]int64    // kind
	suppressed map[[2]string]int64 // kind, reason
}

func newScorerExporter(m *observability.Metrics) *scorerExporter {
	return &scorerExporter{m: m, changes: map[[2]string]int64{}, triggers: map[string]int64{},
		suppressed: map[[2]string]int64{}}
}

// add adds to a counter what n has beyond the total last exported.
func add[K comparable](seen map[K]int64, k K, n int64, inc func(int64)) {
	if d := n - seen[k]; d > 0 {
		inc(d)
		seen[k] = n
	}
}

// export exports st; tasks are the champion's heads (its tasks).
func (e *scorerExporter) export(st scorer.Stats, tasks []string) {
	m := e.m
	for name, seg := range st.Segments {
		m.SetSegmentMembers(name, int(seg.Members))
		add(e.changes, [2]string{name, observability.ChangeEnter}, seg.Enters, func(d int64) {
			m.AddSegmentChanges(name, observability.ChangeEnter, int(d))
		})
		add(e.changes, [2]string{name, observability.ChangeExit}, seg.Exits, func(d int64) {
			m.AddSegmentChanges(name, observability.ChangeExit, int(d))
		})
	}
	for kind, n := range st.Triggers {
		add(e.triggers, kind, n, func(d int64) {
			for range d {
				m.TriggerEmitted(kind)
			}
		})
	}
	for reason, byKind := range st.Suppressed {
		for kind, n := range byKind {
			add(e.suppressed, [2]string{kind, reason}, n, func(d int64) {
				for range d {
					m.TriggerSuppressed(kind, reason)
				}
			})
		}
	}
	if st.ModelVersion > 0 {
		for _, task := range tasks {
			m.SetChampionVersion(task, st.ModelVersion)
		}
	}
}
