package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Worker roles.
const (
	roleProduce      = "produce"
	roleConsumeFloor = "consume-floor"
	roleRedisFloor   = "redis-floor"
	roleIngest       = "ingest"
	roleTrainer      = "trainer"
	roleScore        = "score"
)

// workerSpec is the first line a worker reads: its role and settings.
type workerSpec struct {
	Role         string        `json:"role"`
	Produce      *produceSpec  `json:"produce,omitempty"`
	ConsumeFloor *consumeSpec  `json:"consume_floor,omitempty"`
	RedisFloor   *redisSpec    `json:"redis_floor,omitempty"`
	Ingest       *ingestSpec   `json:"ingest,omitempty"`
	Trainer      *trainerSpec  `json:"trainer,omitempty"`
	Score        *scoreSpec    `json:"score,omitempty"`
	LogLevel     string        `json:"log_level,omitempty"`
	Timeout      time.Duration `json:"timeout"`
}

// workerLine is one line a worker writes on stdout.
type workerLine struct {
	Ready bool `json:"ready,omitempty"`
	Done  bool `json:"done,omitempty"` // the load generator stopped publishing
	// Progress is a running count of the worker's work (the ingester's
	// records consumed, the score role's snapshots handled), for the
	// coordinator's progress display only.
	Progress *int64          `json:"progress,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
}

// Worker commands, one per stdin line after the spec. End of input is
// cmdStop.
const (
	cmdStart = "start" // begin the measured window now
	cmdStop  = "stop"  // end the window, report, exit
)

// control is a worker's view of its stdin commands.
type control struct {
	start chan struct{} // closed at "start"
	stop  chan struct{} // closed at "stop" or end of input
}

func newControl(r *bufio.Reader) *control {
	c := &control{start: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		var once sync.Once
		started := false
		defer once.Do(func() { close(c.stop) })
		for {
			line, err := r.ReadString('\n')
			switch strings.TrimSpace(line) {
			case cmdStart:
				if !started {
					started = true
					close(c.start)
				}
			case cmdStop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

// RunWorker runs one worker process's role: it reads its specification as
// a JSON line from stdin, then commands ("start", "stop") one per line, and
// writes JSON lines to stdout (a ready line when it is ready to measure,
// then its result). Commands that start workers (the coordinator's
// Config.WorkerCommand) call it with the process's stdin and stdout.
func RunWorker(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	r := bufio.NewReader(stdin)
	line, err := r.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("%w: no specification on stdin: %v", ErrWorker, err)
	}
	var spec workerSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("%w: specification: %v", ErrWorker, err)
	}
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}
	ctl := newControl(r)
	enc := json.NewEncoder(stdout)
	var mu sync.Mutex
	emit := func(l workerLine) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(l)
	}
	ready := func() error { return emit(workerLine{Ready: true}) }
	progress := func(n int64) error { return emit(workerLine{Progress: &n}) }
	// The ingester's and the score role's logs: text on stderr, at
	// spec.LogLevel (default warn).
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(spec.LogLevel))
	if spec.LogLevel == "" {
		lv = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	var res any
	switch {
	case spec.Role == roleProduce && spec.Produce != nil:
		res, err = runProduce(ctx, spec.Produce, ctl, ready, func() error { return emit(workerLine{Done: true}) })
	case spec.Role == roleConsumeFloor && spec.ConsumeFloor != nil:
		res, err = runConsumeFloor(ctx, spec.ConsumeFloor, ready)
	case spec.Role == roleRedisFloor && spec.RedisFloor != nil:
		res, err = runRedisFloor(ctx, spec.RedisFloor, ready)
	case spec.Role == roleIngest && spec.Ingest != nil:
		res, err = runIngest(ctx, spec.Ingest, log, ctl, ready, progress)
	case spec.Role == roleTrainer && spec.Trainer != nil:
		res, err = runTrainer(ctx, spec.Trainer, ready)
	case spec.Role == roleScore && spec.Score != nil:
		res, err = runScore(ctx, spec.Score, log, ctl, ready, progress)
	default:
		return fmt.Errorf("%w: unknown role %q or missing settings", ErrWorker, spec.Role)
	}
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return emit(workerLine{Result: b})
}

// progressInterval is how often a worker reports its progress.
const progressInterval = 250 * time.Millisecond

// reportProgress calls report with count() every progressInterval (when it
// changed) until the returned function is called, which reports a last
// time and returns once the reports have stopped; calling it again does
// nothing.
func reportProgress(report func(int64) error, count func() int64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		last := int64(-1)
		for {
			select {
			case <-done:
				_ = report(count())
				return
			case <-t.C:
				if n := count(); n != last {
					last = n
					_ = report(n)
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// waitUntil polls cond every 20 ms until it holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
