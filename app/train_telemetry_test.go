package app

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/observability"
)

// TestTrainerExporter: trainer statistics become the contract's metrics;
// counters add only what is new, baselines' AUCs are not exported (the
// model label is champion or challenger), and a window without an AUC
// removes its series.
func TestTrainerExporter(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := observability.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := &trainerExporter{m: m}
	models := func(champion, challenger float64) map[string]registry.Metrics {
		return map[string]registry.Metrics{
			trainer.ModelChampion: {AUC: registry.Float(champion)}, trainer.ModelChallenger: {AUC: registry.Float(challenger)},
			trainer.ModelNetwork: {AUC: 0.99}, trainer.ModelRecency: {AUC: 0.6},
		}
	}
	e.export(trainer.Stats{Pending: 40, Rollbacks: 1, Champion: 3, Tasks: map[string]trainer.TaskStats{
		"purchase_propensity": {Trained: 100, Models: models(0.71, 0.74)},
		"repeat_purchase_90d": {Trained: 20, Models: map[string]registry.Metrics{trainer.ModelChampion: {AUC: 0.6}}},
	}})
	e.export(trainer.Stats{Pending: 12, Rollbacks: 1, Champion: 4, Tasks: map[string]trainer.TaskStats{
		"purchase_propensity": {Trained: 130, Models: models(0.72, math.NaN())},
		"repeat_purchase_90d": {Trained: 20, Models: map[string]registry.Metrics{trainer.ModelChampion: {AUC: 0.61}}},
	}})
	want := `
# HELP streamprofile_model_champion_version Version number of the model currently serving the task (the champion).
# TYPE streamprofile_model_champion_version gauge
streamprofile_model_champion_version{task="purchase_propensity"} 4
streamprofile_model_champion_version{task="repeat_purchase_90d"} 4
# HELP streamprofile_model_prequential_auc Prequential (test-then-train) AUC over the recent window, per task and model (champion, challenger).
# TYPE streamprofile_model_prequential_auc gauge
streamprofile_model_prequential_auc{model="champion",task="purchase_propensity"} 0.72
streamprofile_model_prequential_auc{model="champion",task="repeat_purchase_90d"} 0.61
# HELP streamprofile_model_rollbacks_total Champion models rolled back to the previous version.
# TYPE streamprofile_model_rollbacks_total counter
streamprofile_model_rollbacks_total 1
# HELP streamprofile_trainer_examples_total Examples the online trainer has learned from; rate() gives examples per second.
# TYPE streamprofile_trainer_examples_total counter
streamprofile_trainer_examples_total 150
# HELP streamprofile_trainer_pending_examples Training examples waiting for their label window to close or for the next training step.
# TYPE streamprofile_trainer_pending_examples gauge
streamprofile_trainer_pending_examples 12
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "streamprofile_model_champion_version",
		"streamprofile_model_prequential_auc", "streamprofile_model_rollbacks_total", "streamprofile_trainer_examples_total",
		"streamprofile_trainer_pending_examples"); err != nil {
		t.Error(err)
	}
}
