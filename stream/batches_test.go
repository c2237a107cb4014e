package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"
)

// recorder is a BatchHandler that logs every call, flushes everything at
// once, and is Full at fullAt pending messages.
type recorder struct {
	mu        sync.Mutex
	calls     []string
	pending   int
	firstPend time.Time
	fullAt    int
	flushErr  error
	flushed   chan struct{} // receives after every Flush (if not nil)
	// finalCtxErr is the work context's error seen by the final flush.
	finalCtxErr error
	finalSeen   bool
}

func (r *recorder) log(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) Process(ctx context.Context, batch []kafka.Message) error {
	if r.pending == 0 {
		r.firstPend = time.Now()
	}
	r.pending += len(batch)
	r.log("process %d-%d", batch[0].Offset, batch[len(batch)-1].Offset)
	return nil
}

func (r *recorder) Unflushed() (time.Time, bool) { return r.firstPend, r.pending > 0 }
func (r *recorder) Full() bool                   { return r.fullAt > 0 && r.pending >= r.fullAt }
func (r *recorder) Tick()                        { r.log("tick") }

func (r *recorder) Flush(ctx context.Context, final bool) error {
	if final {
		r.finalCtxErr, r.finalSeen = ctx.Err(), true
	}
	if r.pending > 0 || final {
		r.log("flush %d final=%v", r.pending, final)
	}
	r.pending = 0
	if r.flushed != nil {
		select {
		case r.flushed <- struct{}{}:
		default:
		}
	}
	return r.flushErr
}

func (r *recorder) log1() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, "; ")
}

func queued(from, n int64, capacity int) chan kafka.Message {
	ch := make(chan kafka.Message, capacity)
	for i := from; i < from+n; i++ {
		ch <- kafka.Message{Offset: i, HighWaterMark: from + n + 5}
	}
	return ch
}

// TestRunBatches specifies the loop that drives every partition processor:
// batches of what is queued up to MaxBatch, a flush when the handler is
// full, when the oldest unflushed work is FlushInterval old, after each
// tick, and a final one when the generation ends or the queue closes.
func TestRunBatches(t *testing.T) {
	defer goleak.VerifyNone(t)
	long := time.Hour
	for _, tc := range []struct {
		name string
		cfg  BatchConfig
		// msgs queued before the loop starts; the queue is closed after
		// them when closeQueue.
		msgs       int64
		closeQueue bool
		fullAt     int
		// stop cancels the generation once the handler has seen stop flushes.
		waitFlushes int
		want        string
		wantLag     int64
	}{
		{
			name: "queue closed: batches of MaxBatch then a final flush",
			cfg:  BatchConfig{MaxBatch: 4, FlushInterval: long, ShutdownTimeout: time.Second},
			msgs: 10, closeQueue: true,
			want:    "process 0-3; process 4-7; process 8-9; flush 10 final=true",
			wantLag: 5,
		},
		{
			name: "full handler flushes after the batch that filled it",
			cfg:  BatchConfig{MaxBatch: 3, FlushInterval: long, ShutdownTimeout: time.Second},
			msgs: 7, closeQueue: true, fullAt: 5,
			want:    "process 0-2; process 3-5; flush 6 final=false; process 6-6; flush 1 final=true",
			wantLag: 5,
		},
		{
			name: "flush interval: idle partition flushes its pending work without new messages",
			cfg:  BatchConfig{MaxBatch: 100, FlushInterval: 20 * time.Millisecond, ShutdownTimeout: time.Second},
			msgs: 3, waitFlushes: 1,
			want:    "process 0-2; flush 3 final=false; flush 0 final=true",
			wantLag: 5,
		},
		{
			name: "ticks call Tick then Flush",
			cfg:  BatchConfig{MaxBatch: 100, FlushInterval: long, ShutdownTimeout: time.Second, Tick: 5 * time.Millisecond},
			msgs: 2, waitFlushes: 1,
			want:    "process 0-1; tick; flush 2 final=false",
			wantLag: 5,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := queued(0, tc.msgs, int(tc.msgs)+1)
			if tc.closeQueue {
				close(msgs)
			}
			f := &Feed{msgs: msgs, errs: make(chan error)}
			r := &recorder{fullAt: tc.fullAt, flushed: make(chan struct{}, 1)}
			gen, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- f.RunBatches(gen, tc.cfg, r) }()
			if tc.waitFlushes > 0 {
				for i := 0; i < tc.waitFlushes; i++ {
					select {
					case <-r.flushed:
					case <-time.After(10 * time.Second):
						t.Fatalf("no flush after %s", r.log1())
					}
				}
				cancel()
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			got := r.log1()
			if tc.name == "ticks call Tick then Flush" {
				// More ticks may come before the cancel lands; the first
				// three calls are the specification.
				got = strings.Join(strings.SplitN(got, "; ", 4)[:3], "; ")
			}
			if got != tc.want {
				t.Errorf("calls\n got: %s\nwant: %s", got, tc.want)
			}
			if f.Lag() != tc.wantLag {
				t.Errorf("lag %d, want %d", f.Lag(), tc.wantLag)
			}
		})
	}
}

// TestRunBatchesErrors: a fetch error or a failed flush ends the loop with
// that error, and a config without the required values is refused.
func TestRunBatchesErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	ok := BatchConfig{MaxBatch: 10, FlushInterval: time.Millisecond, ShutdownTimeout: time.Second}
	t.Run("fetch error", func(t *testing.T) {
		errs := make(chan error, 1)
		boom := errors.New("fetch failed")
		errs <- boom
		f := &Feed{msgs: make(chan kafka.Message), errs: errs}
		if err := f.RunBatches(context.Background(), ok, &recorder{}); !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
	})
	t.Run("flush error", func(t *testing.T) {
		boom := errors.New("redis down")
		f := &Feed{msgs: queued(0, 2, 2), errs: make(chan error)}
		if err := f.RunBatches(context.Background(), ok, &recorder{flushErr: boom}); !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
	})
	for _, bad := range []BatchConfig{
		{FlushInterval: time.Second, ShutdownTimeout: time.Second},
		{MaxBatch: 1, ShutdownTimeout: time.Second},
		{MaxBatch: 1, FlushInterval: time.Second},
	} {
		f := &Feed{msgs: make(chan kafka.Message), errs: make(chan error)}
		if err := f.RunBatches(context.Background(), bad, &recorder{}); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}

// TestRunBatchesWorkOutlivesGeneration: the context the handler works with
// is not cancelled with the generation but ShutdownTimeout after it, so a
// partition's final flush runs (and can reach Redis and Kafka) during a
// rebalance.
func TestRunBatchesWorkOutlivesGeneration(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := &Feed{msgs: queued(0, 1, 1), errs: make(chan error)}
	r := &recorder{flushed: make(chan struct{}, 1)}
	gen, cancel := context.WithCancel(context.Background())
	cfg := BatchConfig{MaxBatch: 1, FlushInterval: time.Millisecond, ShutdownTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- f.RunBatches(gen, cfg, r) }()
	<-r.flushed
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !r.finalSeen {
		t.Fatalf("no final flush: %s", r.log1())
	}
	if r.finalCtxErr != nil {
		t.Fatalf("the final flush ran with a cancelled context (%v) although the generation ended only just before", r.finalCtxErr)
	}
}
