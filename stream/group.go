package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// GroupConfig configures a consumer group. Every field states its default.
type GroupConfig struct {
	// Brokers are the bootstrap brokers. Required.
	Brokers []string
	// GroupID is the Kafka consumer group. Default "streamprofile".
	GroupID string
	// Topic is the input topic. Default "clickstream".
	Topic string
	// QueueCapacity bounds the messages buffered per partition between the
	// fetcher and the processor. Default 1024.
	QueueCapacity int
	// MaxWait is the longest a fetch waits for new data. Default 250ms.
	MaxWait time.Duration
	// MaxBytes bounds one fetch response per partition. Default 4 MiB.
	MaxBytes int
	// SessionTimeout is the group session timeout. Default 10s.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long members take to rejoin. Default 30s.
	RebalanceTimeout time.Duration
	// HeartbeatInterval is the group heartbeat period. Default 1s.
	HeartbeatInterval time.Duration
	// CommitInterval is how often processed offsets are committed to Kafka.
	// These commits are informational (lag tooling); processors resume from
	// the offsets stored with their state. Default 1s.
	CommitInterval time.Duration
	// RetryBackoff is the first delay before a failed partition processor
	// is restarted from its checkpoint; it doubles up to 30s while the
	// restarts make no progress, and starts over after a run that flushed.
	// Default 200ms.
	RetryBackoff time.Duration
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
}

func (c GroupConfig) withDefaults() GroupConfig {
	if c.GroupID == "" {
		c.GroupID = "streamprofile"
	}
	if c.Topic == "" {
		c.Topic = "clickstream"
	}
	if c.QueueCapacity <= 0 {
		c.QueueCapacity = 1024
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 250 * time.Millisecond
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 4 << 20
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports missing or invalid settings.
func (c GroupConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("stream: no brokers configured")
	}
	return nil
}

// Partition identifies an assigned partition.
type Partition struct {
	Topic string
	ID    int
}

func (p Partition) String() string { return fmt.Sprintf("%s/%d", p.Topic, p.ID) }

// Processor consumes one assigned partition. It is created for each
// assignment and, after a failure, again from its stored checkpoint.
type Processor interface {
	// Resume returns the offset to start reading at: the next offset
	// after the stored checkpoint, or kafka.FirstOffset when none exists.
	Resume(ctx context.Context) (int64, error)
	// Run processes messages until ctx is done (then it must flush what it
	// holds and return nil) or it fails. It reports its durable position
	// with Feed.Committed so the group can commit it to Kafka.
	Run(ctx context.Context, feed *Feed) error
}

// ProcessorFactory creates the processor of a newly assigned partition.
type ProcessorFactory func(p Partition) (Processor, error)

// Feed is a processor's view of its partition: a bounded queue of fetched
// messages and position reporting.
type Feed struct {
	Partition Partition
	msgs      <-chan kafka.Message
	errs      <-chan error
	committed atomic.Int64
	// hwm is the largest high watermark seen (at assignment, by the
	// fetcher, or with a processed batch) and next the next offset the
	// processor will process; -1 while unknown. Lag is their difference.
	// Reading from the log start (no checkpoint), next is known from the
	// first fetched record; until then Lag is initLag, as read from the
	// broker at assignment (-1 unknown).
	hwm     atomic.Int64
	next    atomic.Int64
	initLag atomic.Int64
}

// Messages is the bounded queue of fetched messages, in offset order.
func (f *Feed) Messages() <-chan kafka.Message { return f.msgs }

// Errors delivers a fetch error that stopped the fetcher.
func (f *Feed) Errors() <-chan error { return f.errs }

// Committed records that every offset below next is durably processed.
func (f *Feed) Committed(next int64) { f.committed.Store(next) }

// Processed records that the processor has processed m, the newest record
// of its latest batch: the next offset to process becomes the one after m.
// Call it once per batch; it is two atomic operations.
func (f *Feed) Processed(m *kafka.Message) {
	f.next.Store(m.Offset + 1)
	f.seen(m.HighWaterMark)
}

// seen raises the high watermark to hwm.
func (f *Feed) seen(hwm int64) {
	for {
		cur := f.hwm.Load()
		if hwm <= cur || f.hwm.CompareAndSwap(cur, hwm) {
			return
		}
	}
}

// Lag is the partition's high watermark minus the next offset to process;
// -1 while unknown. The high watermark is the largest seen: read from the
// broker when the partition was assigned, then with every fetched record,
// so that records appended after the assignment count before the
// processor's first batch (a lag read once at assignment stayed 0 until
// then, and a group could look caught up with records in its queue).
func (f *Feed) Lag() int64 {
	h, n := f.hwm.Load(), f.next.Load()
	if h < 0 || n < 0 {
		return f.initLag.Load()
	}
	return max(0, h-n)
}

// Group runs a consumer group with one processor goroutine per assigned
// partition.
type Group struct {
	cfg     GroupConfig
	factory ProcessorFactory
	log     *slog.Logger

	mu       sync.Mutex
	assigned map[int]*Feed // the current generation's partitions
	joined   bool
}

// NewGroup returns a group that creates processors with factory.
func NewGroup(cfg GroupConfig, factory ProcessorFactory) (*Group, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if factory == nil {
		return nil, errors.New("stream: nil processor factory")
	}
	cfg = cfg.withDefaults()
	return &Group{cfg: cfg, factory: factory, log: cfg.Logger, assigned: map[int]*Feed{}}, nil
}

// Joined reports whether the member has joined the group at least once
// (and so knows its assignment, which may be empty).
func (g *Group) Joined() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.joined
}

// Assigned returns the partitions of this member's current generation and
// their lag (Feed.Lag: -1 while unknown). A partition whose processor is
// restarting after a failure stays listed with its last lag.
func (g *Group) Assigned() map[int]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[int]int64, len(g.assigned))
	for p, f := range g.assigned {
		out[p] = f.Lag()
	}
	return out
}

// Positions returns, per partition assigned to this member, the next
// offset its processor will process: the one after its latest processed
// batch, or where it starts; -1 while unknown (reading from the log start
// before the first record was fetched). Compared with the partitions'
// end offsets read from the broker it tells whether the member has
// processed everything appended so far, which Lag (as of the latest
// fetch) cannot when records were appended since.
func (g *Group) Positions() map[int]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[int]int64, len(g.assigned))
	for p, f := range g.assigned {
		out[p] = f.next.Load()
	}
	return out
}

// Run joins the group and processes assignments until ctx is done. Each
// generation's processors flush and exit before the member rejoins, so a
// partition is never processed by two members of the group at once unless
// one has lost its session (the store fences that case).
func (g *Group) Run(ctx context.Context) error {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                g.cfg.GroupID,
		Brokers:           g.cfg.Brokers,
		Topics:            []string{g.cfg.Topic},
		SessionTimeout:    g.cfg.SessionTimeout,
		RebalanceTimeout:  g.cfg.RebalanceTimeout,
		HeartbeatInterval: g.cfg.HeartbeatInterval,
		StartOffset:       kafka.FirstOffset,
		JoinGroupBackoff:  500 * time.Millisecond,
		Timeout:           5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("stream: consumer group: %w", err)
	}
	defer cg.Close()
	defer func() {
		g.mu.Lock()
		clear(g.assigned)
		g.mu.Unlock()
	}()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			g.log.Warn("consumer group join failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		parts := gen.Assignments[g.cfg.Topic]
		ids := make([]int, len(parts))
		for i, pa := range parts {
			ids[i] = pa.ID
		}
		g.log.Info("partitions assigned", "generation", gen.ID, "partitions", ids)
		feeds := make([]*Feed, len(parts))
		g.mu.Lock()
		clear(g.assigned)
		for i, pa := range parts {
			f := &Feed{Partition: Partition{Topic: g.cfg.Topic, ID: pa.ID}}
			f.committed.Store(-1)
			f.hwm.Store(-1)
			f.next.Store(-1)
			f.initLag.Store(-1)
			feeds[i] = f
			g.assigned[pa.ID] = f
		}
		g.joined = true
		g.mu.Unlock()
		for _, f := range feeds {
			gen.Start(func(gctx context.Context) { g.runPartition(mergeDone(ctx, gctx), f) })
		}
		gen.Start(func(gctx context.Context) { g.commitLoop(mergeDone(ctx, gctx), gen, feeds) })
		// Next blocks until this generation ends and all its goroutines
		// have returned.
	}
}

// mergeDone returns a context done when either is done.
func mergeDone(a, b context.Context) context.Context {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx
}

func (g *Group) commitLoop(ctx context.Context, gen *kafka.Generation, feeds []*Feed) {
	t := time.NewTicker(g.cfg.CommitInterval)
	defer t.Stop()
	last := map[int]int64{}
	commit := func() {
		offs := map[int]int64{}
		for _, f := range feeds {
			if n := f.committed.Load(); n >= 0 && n != last[f.Partition.ID] {
				offs[f.Partition.ID] = n
			}
		}
		if len(offs) == 0 {
			return
		}
		if err := gen.CommitOffsets(map[string]map[int]int64{g.cfg.Topic: offs}); err != nil {
			g.log.Debug("informational offset commit failed", "err", err)
			return
		}
		for p, n := range offs {
			last[p] = n
		}
	}
	for {
		select {
		case <-ctx.Done():
			commit()
			return
		case <-t.C:
			commit()
		}
	}
}

// runPartition runs processors for one partition until ctx is done,
// restarting from the stored checkpoint after a failure.
func (g *Group) runPartition(ctx context.Context, f *Feed) {
	backoff := g.cfg.RetryBackoff
	for ctx.Err() == nil {
		before := f.committed.Load()
		err := g.runOnce(ctx, f)
		if err == nil || ctx.Err() != nil {
			return
		}
		if f.committed.Load() != before {
			// The run made progress before it failed: this is a new
			// incident, not the next try of the last one.
			backoff = g.cfg.RetryBackoff
		}
		g.log.Warn("partition processor failed; restarting from checkpoint", "partition", f.Partition.String(), "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff)/2+1))):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (g *Group) runOnce(ctx context.Context, f *Feed) error {
	proc, err := g.factory(f.Partition)
	if err != nil {
		return err
	}
	start, err := proc.Resume(ctx)
	if err != nil {
		return err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       g.cfg.Brokers,
		Topic:         f.Partition.Topic,
		Partition:     f.Partition.ID,
		MinBytes:      1,
		MaxBytes:      g.cfg.MaxBytes,
		MaxWait:       g.cfg.MaxWait,
		QueueCapacity: g.cfg.QueueCapacity,
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("stream: seek %s to %d: %w", f.Partition, start, err)
	}
	f.next.Store(max(start, -1)) // kafka.FirstOffset: known from the first fetched record
	msgs := make(chan kafka.Message, g.cfg.QueueCapacity)
	errs := make(chan error, 1)
	fctx, stopFetch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(msgs)
		// The lag until the processor reports its first batch (an idle
		// partition may never have one).
		if lag, err := r.ReadLag(fctx); err == nil {
			f.initLag.Store(lag)
			if start >= 0 {
				f.seen(start + lag)
			}
		}
		first, hwm := true, int64(-1) // the shared ones change rarely: per fetch, not per record
		for {
			m, err := r.FetchMessage(fctx)
			if err != nil {
				if fctx.Err() == nil {
					errs <- fmt.Errorf("stream: fetch %s: %w", f.Partition, err)
				}
				return
			}
			if first {
				f.next.CompareAndSwap(-1, m.Offset) // from the log start: the first record is next
				first = false
			}
			if m.HighWaterMark > hwm {
				hwm = m.HighWaterMark
				f.seen(hwm)
			}
			select {
			case msgs <- m:
			case <-fctx.Done():
				return
			}
		}
	}()
	f.msgs, f.errs = msgs, errs
	err = proc.Run(ctx, f)
	stopFetch()
	wg.Wait()
	return err
}
