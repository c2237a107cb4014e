package trainer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
)

func gateConfig() Config {
	return Config{Arch: smallArch(inputs.HeadPurchase), PurchaseHorizon: 5 * time.Minute, AllowedLateness: time.Minute,
		BatchSize: 32, CheckpointBatches: 5, ChampionPoll: time.Nanosecond,
		Gate: GateConfig{Examples: 1000, MinExamples: 200}}
}

// A challenger trained on shuffled labels is never promoted over a good
// champion: the gate compares both on the same, later examples.
func TestCorruptedChallengerIsNeverPromoted(t *testing.T) {
	ctx := context.Background()
	snaps := reesSnapshots(t)
	reg := newRegistry(t)
	good := newTrainer(t, gateConfig(), reg)
	split := len(snaps) * 55 / 100
	feed(t, good, snaps[:split], 1, nil)
	champ, _, err := reg.Champion(ctx)
	if err != nil {
		t.Fatalf("the clean trainer got no champion: %v (stats %+v)", err, good.Stats())
	}
	resume := good.c.parts[0].next
	good.Close()

	// The corrupted trainer has its own (different) architecture, so it
	// trains from scratch, on shuffled labels, in the same registry.
	cfg := gateConfig()
	cfg.Arch.Hidden = []int{8}
	cfg.corrupt = true
	bad := newTrainer(t, cfg, reg)
	before := bad.Stats() // counters continue from the registry's latest state
	feed(t, bad, withFlush(snaps[split:], 1, time.Hour), 1, map[int]int64{0: resume})
	st := bad.Stats()
	if st.Promotions != before.Promotions {
		vs, _ := reg.List(ctx)
		for _, v := range vs {
			t.Logf("version %d %s %v", v.Number, v.Status, v.Notes)
		}
		t.Fatalf("%d corrupted challengers promoted", st.Promotions-before.Promotions)
	}
	if st.Rejections == before.Rejections {
		t.Fatalf("no gate decision was taken (stats %+v)", st)
	}
	vs, _ := reg.List(ctx)
	rejected := 0
	for _, v := range vs {
		if v.SchemaHash == inputs.SchemaHash(cfg.Arch) {
			if v.Status == registry.StatusChampion || v.Status == registry.StatusRolledBack {
				t.Errorf("corrupted version %d became %s", v.Number, v.Status)
			}
			for _, n := range v.Notes {
				if strings.HasPrefix(n.Text, "retired: rejected by the gate") {
					rejected++
					t.Logf("version %d: %s", v.Number, n.Text)
				}
			}
		}
	}
	if rejected == 0 {
		t.Error("no corrupted version carries a gate rejection note")
	}
	// The champion may have been rolled back meanwhile (the data drifts),
	// but never to a corrupted version.
	if now, _, _ := reg.Champion(ctx); now.SchemaHash != champ.SchemaHash {
		t.Errorf("champion %d has the corrupted trainer's schema", now.Number)
	}
}

// badModel is a network trained to predict the opposite of the labels.
func badModel(t *testing.T, arch nn.Arch, tr *Trainer) *nn.Model {
	t.Helper()
	net, err := nn.NewNetworkFrom(tr.Model())
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	snaps := reesSnapshots(t)
	exs := make([]nn.Example, 0, 4000)
	for i := range snaps[:4000] {
		ex := tr.Encoder().Encode(&snaps[i])
		// Inverted: active users are labelled as never buying.
		y := 1.0
		if snaps[i].Features["activity_1h"] > 2 || snaps[i].Features["carts_total"] > 0 {
			y = 0
		}
		ex.Labels, ex.Mask = []float64{y}, []bool{true}
		exs = append(exs, ex)
	}
	for range 5 {
		if _, err := net.TrainBatch(exs); err != nil {
			t.Fatal(err)
		}
	}
	m, err := net.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A bad version forced to champion (as with `streamprofile model
// promote`) is rolled back to the previous good champion once its live AUC
// over a full window falls below that champion's by more than the margin.
func TestBadChampionIsRolledBack(t *testing.T) {
	ctx := context.Background()
	snaps := withFlush(reesSnapshots(t), 1, time.Hour)
	reg := newRegistry(t)
	tr := newTrainer(t, gateConfig(), reg)
	split := len(snaps) * 45 / 100
	feed(t, tr, snaps[:split], 1, nil)
	good, _, err := reg.Champion(ctx)
	if err != nil {
		t.Fatalf("no champion after the first part: %v", err)
	}
	cfg := tr.c.cfg
	bm := badModel(t, cfg.Arch, tr)
	bv, err := reg.Create(ctx, registry.Version{Parent: good.Number, SchemaHash: inputs.SchemaHash(cfg.Arch), Arch: cfg.Arch}, bm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Promote(ctx, bv.Number, "forced by an operator"); err != nil {
		t.Fatal(err)
	}
	feed(t, tr, snaps[split:], 1, map[int]int64{0: int64(split)})
	st := tr.Stats()
	bad, _ := reg.Get(ctx, bv.Number)
	now, _, _ := reg.Champion(ctx)
	t.Logf("rollbacks %d, promotions %d; bad version %d is %s; champion %d; notes %v", st.Rollbacks, st.Promotions, bad.Number, bad.Status, now.Number, bad.Notes)
	if bad.Status != registry.StatusRolledBack || st.Rollbacks == 0 {
		t.Fatalf("bad champion %d is %s (rollbacks %d)", bad.Number, bad.Status, st.Rollbacks)
	}
	if live := bad.Metrics[inputs.HeadPurchase]["live"]; live.Examples < 1000 {
		t.Errorf("rolled back on %d live examples, want a full window", live.Examples)
	}
}
