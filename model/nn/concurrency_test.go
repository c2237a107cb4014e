package nn

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSnapshotImmutableUnderTraining scores snapshots from several
// goroutines while the trainer keeps training and publishing new ones. Run
// with -race. Every score from a given snapshot must stay bit-identical.
func TestSnapshotImmutableUnderTraining(t *testing.T) {
	n := newTestNetwork(t, testArch())
	train := synth(30, 64)
	if _, err := n.TrainBatch(train); err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[Model]
	current.Store(snapshot(t, n))
	probe := synth(31, 8)

	type ref struct {
		m      *Model
		scores [][]float64
	}
	reference := func(m *Model) ref {
		r := ref{m: m}
		for _, ex := range probe {
			p, err := m.Predict(ex)
			if err != nil {
				t.Error(err)
			}
			r.scores = append(r.scores, p)
		}
		return r
	}
	first := reference(current.Load())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var predictions atomic.Int64
	const workers = 2
	errs := make(chan string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := reference(current.Load())
			dst := make([]float64, 2)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%20 == 0 { // pick up the newest snapshot now and then
					local = reference(current.Load())
				}
				for _, r := range []ref{first, local} {
					k := (i + w) % len(probe)
					p, err := r.m.PredictInto(dst, probe[k])
					if err != nil {
						errs <- err.Error()
						return
					}
					for h := range p {
						if math.Float64bits(p[h]) != math.Float64bits(r.scores[k][h]) {
							errs <- "a snapshot's score changed while training"
							return
						}
					}
					if i%10 == 0 {
						if _, err := r.m.Explain(probe[k], nil); err != nil {
							errs <- err.Error()
							return
						}
					}
					predictions.Add(1)
				}
			}
		}()
	}
	for range 15 {
		runtime.Gosched()
		if _, err := n.TrainBatch(train); err != nil {
			t.Fatal(err)
		}
		current.Store(snapshot(t, n))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if predictions.Load() == 0 {
		t.Error("no concurrent predictions ran")
	}
	// Training did move the weights: the newest snapshot scores differently.
	last := reference(current.Load())
	if math.Float64bits(last.scores[0][0]) == math.Float64bits(first.scores[0][0]) {
		t.Error("training did not change the scores; the test proves nothing")
	}
}
