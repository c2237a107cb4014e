package trainer

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/stream"
)

// Trainer learns the network continuously from profile snapshots, scores
// every snapshot prequentially with the network, the champion and the
// baselines, cuts versions into a registry and runs the promotion gate and
// the rollback monitor. Its methods are safe for concurrent use; the work
// itself is serialised (one network).
type Trainer struct {
	mu       sync.Mutex
	c        *core
	restored bool
	closed   bool
}

// New returns a trainer that stores versions in reg. Call Restore (or let
// the first partition processor do it) before processing.
func New(cfg Config, reg *registry.Registry) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if reg == nil {
		return nil, fmt.Errorf("%w: nil registry", ErrInvalidConfig)
	}
	c, err := newCore(cfg.WithDefaults(), reg)
	if err != nil {
		return nil, err
	}
	return &Trainer{c: c}, nil
}

// Restore loads the latest version's weights and trainer state (see
// doc.go, "Restarts"), or starts a fresh network. It runs once; later
// calls do nothing.
func (t *Trainer) Restore(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.restoreLocked(ctx)
}

func (t *Trainer) restoreLocked(ctx context.Context) error {
	if t.closed {
		return ErrClosed
	}
	if t.restored {
		return nil
	}
	if err := t.c.restore(ctx); err != nil {
		return err
	}
	t.restored = true
	return nil
}

// Process handles one profile-examples message value at partition/offset
// and then runs due work (micro-batches, checkpoints, the gate).
func (t *Trainer) Process(ctx context.Context, partition int, offset int64, value []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.restoreLocked(ctx); err != nil {
		return err
	}
	t.c.process(ctx, partition, offset, value)
	return t.c.tick(ctx)
}

// ProcessSnapshot is Process for an already decoded snapshot.
func (t *Trainer) ProcessSnapshot(ctx context.Context, partition int, offset int64, s *features.Snapshot) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.restoreLocked(ctx); err != nil {
		return err
	}
	ps := t.c.part(partition)
	if ps.next < 0 || offset >= ps.next {
		t.c.processSnapshot(ctx, ps, offset, s)
	}
	return t.c.tick(ctx)
}

// Tick runs due time-driven work.
func (t *Trainer) Tick(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if !t.restored {
		return nil
	}
	return t.c.tick(ctx)
}

// Checkpoint trains every matured example and cuts a version now (when
// anything was consumed since the last one). It returns the latest
// version number.
func (t *Trainer) Checkpoint(ctx context.Context) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, ErrClosed
	}
	if !t.restored {
		return 0, nil
	}
	if t.c.trainedSinceCP > 0 || len(t.c.ready) > 0 || t.c.c.Snapshots+t.c.c.Duplicates+t.c.c.Bad > 0 && t.c.lastVersion == 0 {
		if err := t.c.checkpoint(ctx); err != nil {
			return 0, err
		}
	}
	return t.c.lastVersion, nil
}

// AdvanceTime declares the input finished and d of event time passed
// after each partition's newest event with no further event: every
// pending example whose horizon ends within that matures, as a negative
// unless its label event came. (The allowed lateness is not subtracted:
// it waits for late events, and none will come.) It is for the end of a
// finite replay (the demo, a backfill), whose last examples would
// otherwise stay pending for ever; on a live stream the next events move
// time. The matured examples are evaluated now and learnt at the next
// micro-batch or Checkpoint. It returns how many labels matured.
func (t *Trainer) AdvanceTime(d time.Duration) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, ErrClosed
	}
	if d < 0 {
		return 0, fmt.Errorf("trainer: AdvanceTime(%v): negative duration", d)
	}
	if !t.restored {
		return 0, nil
	}
	return t.c.advanceTime(d), nil
}

// Model returns the network's weights at the latest checkpoint (or at the
// start).
func (t *Trainer) Model() *nn.Model {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c.latest
}

// Snapshot returns the network's current weights (including what was
// trained since the last checkpoint).
func (t *Trainer) Snapshot() (*nn.Model, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c.net == nil {
		return nil, ErrClosed
	}
	t.c.train(true)
	return t.c.net.Snapshot()
}

// Encoder returns the input encoder of the trainer's architecture, bound
// to the BG/NBD fit in force (the one CLV returns, or none): the encoder
// examples arriving now are encoded with.
func (t *Trainer) Encoder() *inputs.Encoder {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c.enc
}

// CLV returns the latest BG/NBD and Gamma-Gamma fit (nil before the
// first).
func (t *Trainer) CLV() *registry.CLVParams {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c.bg.params
}

// Close releases the network. It does not checkpoint.
func (t *Trainer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.c.net != nil {
		err := t.c.net.Close()
		t.c.net = nil
		return err
	}
	return nil
}

// Factory returns the stream.ProcessorFactory that feeds the trainer from
// a consumer group's partitions.
func (t *Trainer) Factory() stream.ProcessorFactory {
	return func(p stream.Partition) (stream.Processor, error) { return &processor{t: t, part: p.ID}, nil }
}

// processor adapts one assigned partition to the trainer.
type processor struct {
	t    *Trainer
	part int
}

// tickEvery is how often an idle partition processor runs time-driven
// work.
const tickEvery = 100 * time.Millisecond

// Resume implements stream.Processor: the partition's in-memory position,
// else its restart point from the latest checkpoint, else the first offset.
func (p *processor) Resume(ctx context.Context) (int64, error) {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.restoreLocked(ctx); err != nil {
		return 0, err
	}
	ps := t.c.part(p.part)
	if ps.resume < 0 {
		return kafka.FirstOffset, nil
	}
	return ps.resume, nil
}

// Run implements stream.Processor.
func (p *processor) Run(ctx context.Context, feed *stream.Feed) error {
	t := p.t
	t.mu.Lock()
	t.c.part(p.part).feed = feed
	t.mu.Unlock()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	msgs := feed.Messages()
	batch := make([]kafka.Message, 0, 256)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case err := <-feed.Errors():
			return err
		case <-tick.C:
			if err := t.Tick(ctx); err != nil {
				return err
			}
			continue
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			batch = append(batch, m)
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-msgs:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		if err := p.process(ctx, batch); err != nil {
			return err
		}
		feed.Processed(&batch[len(batch)-1]) // the partition's lag
	}
}

func (p *processor) process(ctx context.Context, batch []kafka.Message) error {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	for i := range batch {
		t.c.process(ctx, p.part, batch[i].Offset, batch[i].Value)
	}
	return t.c.tick(ctx)
}

// CurvePoint is one point of the learning curve: prequential AUC per model
// (over the last Window examples) after Evaluated examples of the followed
// task had been evaluated.
type CurvePoint struct {
	Evaluated int64              `json:"evaluated"`
	EventTime time.Time          `json:"event_time"`
	AUC       map[string]float64 `json:"auc"`
}

// TaskStats are one task's counts and per-model prequential metrics.
type TaskStats struct {
	Examples  int64                       `json:"examples"`
	Matured   int64                       `json:"matured"`
	Evaluated int64                       `json:"evaluated"`
	Positives int64                       `json:"positives"`
	Trained   int64                       `json:"trained"`
	Models    map[string]registry.Metrics `json:"models"`
}

// Stats is a snapshot of the trainer's counters and metrics, for reports
// and monitoring. Counters continue across restarts.
type Stats struct {
	Snapshots    int64                `json:"snapshots"`
	BadSnapshots int64                `json:"bad_snapshots"`
	Duplicates   int64                `json:"duplicates"`
	OutOfOrder   int64                `json:"out_of_order"`
	Tasks        map[string]TaskStats `json:"tasks"`
	Pending      int                  `json:"pending"`
	Dropped      int64                `json:"dropped"`
	Batches      int64                `json:"batches"`
	TrainErrors  int64                `json:"train_errors"`
	Versions     int64                `json:"versions"`
	Promotions   int64                `json:"promotions"`
	Rejections   int64                `json:"rejections"`
	Rollbacks    int64                `json:"rollbacks"`
	Latest       int64                `json:"latest_version"`
	Champion     int64                `json:"champion"`
	Challenger   int64                `json:"challenger"`
	// ExamplesPerSecond is examples this trainer (this process) learnt per
	// wall-clock second since it started.
	ExamplesPerSecond float64             `json:"examples_per_second"`
	Curve             []CurvePoint        `json:"curve"`
	CLV               *registry.CLVParams `json:"clv,omitempty"`
	Customers         int                 `json:"customers"`
	BGNBDFits         int                 `json:"bgnbd_fits"`
	// ConsentSnapshots counts consent snapshots, which are neither
	// examples nor labels (not in Snapshots).
	ConsentSnapshots int64 `json:"consent_snapshots"`
}

// Stats returns the current statistics.
func (t *Trainer) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.c
	s := Stats{Snapshots: c.c.Snapshots, BadSnapshots: c.c.Bad, ConsentSnapshots: c.c.Consent, Duplicates: c.c.Duplicates, OutOfOrder: c.c.OutOfOrder,
		Tasks: map[string]TaskStats{}, Pending: c.open, Dropped: c.c.Dropped, Batches: c.c.Batches, TrainErrors: c.c.TrainErrors,
		Versions: c.c.Versions, Promotions: c.c.Promotions, Rejections: c.c.Rejections, Rollbacks: c.c.Rollbacks,
		Latest: c.lastVersion, Curve: append([]CurvePoint(nil), c.curve...), CLV: c.bg.params, Customers: len(c.bg.customers),
		BGNBDFits: c.bg.fits}
	if c.champion != nil {
		s.Champion = c.champion.Version.Number
	}
	if c.gate != nil {
		s.Challenger = c.gate.version
	}
	var trained int64
	ms := c.metricsMap()
	for tk := range numTasks {
		if c.heads[tk] < 0 {
			continue
		}
		name := c.cfg.Arch.Heads[c.heads[tk]]
		s.Tasks[name] = TaskStats{Examples: c.c.Examples[tk], Matured: c.c.Matured[tk], Evaluated: c.c.Evaluated[tk], Positives: c.c.Positives[tk],
			Trained: c.c.Trained[tk], Models: ms[name]}
		trained += c.c.Trained[tk]
	}
	if el := c.cfg.Now().Sub(c.started).Seconds(); el > 0 {
		s.ExamplesPerSecond = math.Round(float64(trained-c.trainedAtStart)/el*10) / 10
	}
	return s
}

// Forget drops every example and summary the trainer holds for user (a
// profile erased at `at`) and returns how many examples it dropped.
// Snapshots of the user produced before `at` that arrive later are dropped
// too. Weights already trained keep what they learnt; see doc.go.
func (t *Trainer) Forget(user string, at time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c.forget(user, at)
}

// Holds reports how many examples (pending, or matured and not yet
// learnt) the trainer holds for user.
func (t *Trainer) Holds(user string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c.pendingFor(user)
}
