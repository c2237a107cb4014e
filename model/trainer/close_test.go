package trainer

import (
	"context"
	"errors"
	"testing"

	"github.com/streamprofile/streamprofile/model/inputs"
)

// TestUseAfterClose: a role that is still shutting down may call the
// trainer after Close released the network; every call answers ErrClosed
// instead of touching the released network.
func TestUseAfterClose(t *testing.T) {
	tr := newTrainer(t, Config{Arch: smallArch(inputs.HeadPurchase), BatchSize: 8}, newRegistry(t))
	snaps := reesSnapshots(t)[:200]
	feed(t, tr, snaps, 2, nil)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := tr.Checkpoint(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Checkpoint after Close: %v, want ErrClosed", err)
	}
	if err := tr.Tick(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Tick after Close: %v, want ErrClosed", err)
	}
	if _, err := tr.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot after Close: %v, want ErrClosed", err)
	}
	if err := tr.ProcessSnapshot(ctx, 0, 1000, &snaps[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("ProcessSnapshot after Close: %v, want ErrClosed", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
