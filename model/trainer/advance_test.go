package trainer

import (
	"context"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/model/inputs"
)

// AdvanceTime at the end of a finite replay matures exactly what time
// passing with no event would: the same labels as the same stream
// followed by events far later (withFlush), evaluated in the same order,
// so the prequential metrics agree too; no purchase example stays
// pending, and the matured ones are learnt at the next checkpoint.
func TestAdvanceTimeMaturesLikeTimePassing(t *testing.T) {
	snaps := reesSnapshots(t)
	cfg := Config{Arch: smallArch(inputs.HeadPurchase), PurchaseHorizon: 5 * time.Minute, AllowedLateness: time.Minute, Window: 5000,
		BatchSize: 32, CheckpointBatches: 10}
	flushed := newTrainer(t, cfg, newRegistry(t))
	feed(t, flushed, withFlush(snaps, 2, time.Hour), 2, nil)
	want := flushed.Stats().Tasks[inputs.HeadPurchase]

	tr := newTrainer(t, cfg, newRegistry(t))
	feed(t, tr, snaps, 2, nil)
	before := tr.Stats().Tasks[inputs.HeadPurchase]
	n, err := tr.AdvanceTime(cfg.PurchaseHorizon)
	if err != nil {
		t.Fatal(err)
	}
	got := tr.Stats().Tasks[inputs.HeadPurchase]
	t.Logf("before: matured %d of %d; AdvanceTime matured %d; after: %d (%d positive); network AUC %.4f",
		before.Matured, before.Examples, n, got.Matured, got.Positives, float64(got.Models[ModelNetwork].AUC))
	if n <= 0 || got.Matured != before.Matured+int64(n) {
		t.Fatalf("AdvanceTime matured %d: %d → %d", n, before.Matured, got.Matured)
	}
	// The flushed stream has one sentinel example per partition, still
	// pending at its end.
	if got.Matured != got.Examples || got.Matured != want.Matured || got.Positives != want.Positives {
		t.Fatalf("matured %d of %d (%d positive), want %d (%d positive) as when time passes",
			got.Matured, got.Examples, got.Positives, want.Matured, want.Positives)
	}
	for _, m := range []string{ModelRecency, ModelLogistic} {
		if got.Models[m].AUC != want.Models[m].AUC || got.Models[m].Examples != want.Models[m].Examples {
			t.Errorf("%s: AUC %.6f over %d, want %.6f over %d", m, float64(got.Models[m].AUC), got.Models[m].Examples,
				float64(want.Models[m].AUC), want.Models[m].Examples)
		}
	}
	if again, err := tr.AdvanceTime(cfg.PurchaseHorizon); err != nil || again != 0 {
		t.Fatalf("second AdvanceTime matured %d (%v), want 0", again, err)
	}
	trained := tr.Stats().Tasks[inputs.HeadPurchase].Trained
	if _, err := tr.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := tr.Stats().Tasks[inputs.HeadPurchase].Trained; after != got.Matured {
		t.Fatalf("trained %d → %d after the checkpoint, want every matured example (%d)", trained, after, got.Matured)
	}
	if _, err := tr.AdvanceTime(-time.Second); err == nil {
		t.Fatal("AdvanceTime(-1s) accepted")
	}
}
