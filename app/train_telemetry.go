package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/observability"
)

// TrainerStatsInterval is how often ServeTrainer exports the trainer's
// statistics to the metrics.
const TrainerStatsInterval = 5 * time.Second

// ServeTrainer runs the train role t (Trainer.Run) under a: the consumer
// lag of the snapshot topic and the trainer's statistics are exported to
// a's metrics (pending examples, examples trained, rollbacks, champion
// version and the prequential AUC of champion and challenger per task,
// every TrainerStatsInterval and once more at the end), and /readyz
// reports the partitions caught up and the registry's Redis reachable. A
// nil a runs t alone.
func ServeTrainer(ctx context.Context, t *Trainer, a *Admin) error {
	if a == nil {
		return t.Run(ctx)
	}
	if err := a.Metrics().RegisterLag(t.cfg.Topic, t.group.Assigned); err != nil {
		return fmt.Errorf("train: metrics: %w", err)
	}
	a.AddCheck(GroupCaughtUp("trainer-partitions", t.group, a.Config().MaxLag))
	if t.cfg.Registry.Dir == "" {
		rdb := NewRedis(t.cfg.Registry.Redis)
		defer rdb.Close()
		a.AddCheck(RedisReachable("registry-redis", rdb))
	}
	return a.Serve(ctx, func(ctx context.Context) error {
		exp := &trainerExporter{m: a.Metrics()}
		rctx, stop := context.WithCancel(ctx)
		g, gctx := errgroup.WithContext(rctx)
		g.Go(func() error {
			defer stop()
			return t.Run(gctx)
		})
		g.Go(func() error {
			tick := time.NewTicker(TrainerStatsInterval)
			defer tick.Stop()
			for {
				select {
				case <-gctx.Done():
					return nil
				case <-tick.C:
					exp.export(t.Stats())
				}
			}
		})
		err := g.Wait()
		exp.export(t.Stats())
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil
		}
		return err
	})
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
