package app

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/observability"
)

// TrainerStatsInterval is how often the trainer's statistics are exported
// to the metrics.
const TrainerStatsInterval = 5 * time.Second

// ServeTrainer runs the train role t (Trainer.Run) with a's listener
// beside it (see InstrumentTrainer for what a gets). A nil a runs t alone.
func ServeTrainer(ctx context.Context, t *Trainer, a *Admin) error {
	if a == nil {
		return t.Run(ctx)
	}
	export, release, err := InstrumentTrainer(t, a)
	if err != nil {
		return err
	}
	defer release()
	return a.Serve(ctx, func(ctx context.Context) error {
		rctx, stop := context.WithCancel(ctx)
		g, gctx := errgroup.WithContext(rctx)
		g.Go(func() error {
			defer stop()
			return t.Run(gctx)
		})
		g.Go(func() error { return export(gctx) })
		return g.Wait()
	})
}

// InstrumentTrainer registers t with a: the consumer lag of the snapshot
// topic on a's metrics, and the readiness checks "trainer-partitions"
// (caught up) and, with a Redis registry, "registry-redis" (reachable). It
// returns export, which exports t's statistics to a's metrics (pending
// examples, examples trained, rollbacks, champion version and the
// prequential AUC of champion and challenger per task) every
// TrainerStatsInterval until ctx is done and once more then, and release,
// to call once t has stopped. ServeTrainer uses it; a process that serves
// a already (the demo) calls it and runs export beside t.Run.
func InstrumentTrainer(t *Trainer, a *Admin) (export func(context.Context) error, release func(), err error) {
	if err := a.Metrics().RegisterLag(t.cfg.Topic, t.group.Assigned); err != nil {
		return nil, nil, fmt.Errorf("train: metrics: %w", err)
	}
	a.AddCheck(GroupCaughtUp("trainer-partitions", t.group, a.Config().MaxLag))
	release = func() {}
	if t.cfg.Registry.Dir == "" {
		rdb := NewRedis(t.cfg.Registry.Redis)
		release = func() { _ = rdb.Close() }
		a.AddCheck(RedisReachable("registry-redis", rdb))
	}
	exp := &trainerExporter{m: a.Metrics()}
	return exportEvery(TrainerStatsInterval, func() { exp.export(t.Stats()) }), release, nil
}

// trainerExporter turns trainer.Stats snapshots into metric updates; its
// counters remember what was already added.
type trainerExporter struct {
	m                  *observability.Metrics
	trained, rollbacks int64
}

func (e *trainerExporter) export(st trainer.Stats) {
	e.m.SetTrainerPending(st.Pending)
	var trained int64
	for task, ts := range st.Tasks {
		trained += ts.Trained
		if st.Champion > 0 {
			e.m.SetChampionVersion(task, st.Champion)
		}
		for _, model := range [...][2]string{
			{trainer.ModelChampion, observability.ModelChampion},
			{trainer.ModelChallenger, observability.ModelChallenger},
		} {
			auc := math.NaN() // no window yet: no series
			if mm, ok := ts.Models[model[0]]; ok {
				auc = float64(mm.AUC)
			}
			e.m.SetPrequentialAUC(task, model[1], auc)
		}
	}
	// Counters carry on from the restored lineage's totals: the first
	// export adds them all, later ones the difference.
	e.m.AddTrainedExamples(trained - e.trained)
	e.m.AddRollbacks(st.Rollbacks - e.rollbacks)
	e.trained, e.rollbacks = max(e.trained, trained), max(e.rollbacks, st.Rollbacks)
}
