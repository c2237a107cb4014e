package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// StateStore is what a partition processor needs from the feature store.
type StateStore interface {
	LoadCheckpoint(ctx context.Context, topic string, partition int) (features.Checkpoint, error)
	Load(ctx context.Context, topic string, partition int, users []string) ([]features.Loaded, error)
	Write(ctx context.Context, f features.Flush) (features.FlushStats, error)
}

// Sender writes messages and returns once they are acknowledged.
type Sender interface {
	Send(ctx context.Context, msgs ...kafka.Message) error
}

// entry is a cached user.
type entry struct {
	state   features.State
	stamp   int64 // offset of the last applied event of this partition (-1 none)
	dirty   bool
	lastUse uint64
}

// processor owns one partition: its cache, watermark and pending flush.
// Everything here is touched only by the processor's goroutine.
type processor struct {
	t    *Topology
	part stream.Partition

	wm        *stream.Watermark
	cache     map[string]*entry
	tick      uint64
	pending   int       // messages processed since the last flush
	firstPend time.Time // when the oldest unflushed message was processed
	next      int64     // next offset to read (checkpoint candidate)
	flushed   int64     // next offset covered by the last flush
	outbox    []kafka.Message
	dirtyList []string
	stages    []PartitionStage
}

func newProcessor(t *Topology, p stream.Partition) *processor {
	return &processor{t: t, part: p, cache: make(map[string]*entry), next: -1, flushed: -1}
}

// Resume loads the checkpoint and returns the offset to read from.
func (p *processor) Resume(ctx context.Context) (int64, error) {
	cp, err := p.t.store.LoadCheckpoint(ctx, p.part.Topic, p.part.ID)
	if err != nil {
		return 0, err
	}
	p.wm = stream.NewWatermark(p.t.cfg.Features.AllowedLateness, cp.Watermark)
	p.stages = p.stages[:0]
	for _, s := range p.t.stages {
		ps, err := s.Partition(ctx, p.part)
		if err != nil {
			return 0, err
		}
		p.stages = append(p.stages, ps)
	}
	if cp.Next < 0 {
		return kafka.FirstOffset, nil
	}
	p.next, p.flushed = cp.Next, cp.Next
	return cp.Next, nil
}

// Run processes the partition until ctx is done.
func (p *processor) Run(ctx context.Context, feed *stream.Feed) error {
	cfg := &p.t.cfg
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	batch := make([]kafka.Message, 0, cfg.MaxBatch)
	msgs := feed.Messages()
	for {
		batch = batch[:0]
		var deadline <-chan time.Time
		if p.unflushed() {
			wait := cfg.FlushInterval - time.Since(p.firstPend)
			if wait <= 0 {
				if err := p.flush(ctx, feed); err != nil {
					return err
				}
				continue
			}
			timer.Reset(wait)
			deadline = timer.C
		}
		select {
		case <-ctx.Done():
			// Flush with a fresh bounded context: the work is done and
			// only needs to be made durable.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
			err := p.flush(fctx, feed)
			cancel()
			return err
		case err := <-feed.Errors():
			return err
		case <-deadline:
			if err := p.flush(ctx, feed); err != nil {
				return err
			}
			continue
		case m, ok := <-msgs:
			if !ok {
				return p.flush(ctx, feed)
			}
			batch = append(batch, m)
		}
		if deadline != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		// Drain what is already queued, up to MaxBatch.
	drain:
		for len(batch) < cfg.MaxBatch {
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
		if p.pending >= cfg.FlushEvents {
			if err := p.flush(ctx, feed); err != nil {
				return err
			}
		}
	}
}

// decoded is a message with its decode result.
type decoded struct {
	msg  *kafka.Message
	ev   stream.Event
	user string
	bad  *stream.DecodeError
}

func (p *processor) process(ctx context.Context, batch []kafka.Message) error {
	t := p.t
	if len(batch) == 0 {
		return nil
	}
	if !p.unflushed() {
		p.firstPend = time.Now()
	}
	evs := make([]decoded, len(batch))
	var missing []string
	seen := map[string]bool{}
	for i := range batch {
		m := &batch[i]
		d := &evs[i]
		d.msg = m
		t.stats.Consumed.Add(1)
		ev, err := t.decoder.Decode(m.Value)
		if err != nil {
			var de *stream.DecodeError
			if !errors.As(err, &de) {
				de = &stream.DecodeError{Reason: stream.ReasonMalformed, Msg: err.Error()}
			}
			d.bad = de
			continue
		}
		d.ev = ev
		d.user = ev.ProfileKey()
		if string(m.Key) != d.user {
			d.bad = &stream.DecodeError{Reason: stream.ReasonKeyMismatch, Field: "user_id",
				Msg: "message key is not the event's user_id (or anonymous_id when user_id is absent)"}
			continue
		}
		if _, ok := p.cache[d.user]; !ok && !seen[d.user] {
			seen[d.user] = true
			missing = append(missing, d.user)
		}
	}
	if len(missing) > 0 {
		loaded, err := t.store.Load(ctx, p.part.Topic, p.part.ID, missing)
		if err != nil {
			return err
		}
		t.stats.RedisLoads.Add(1)
		for i, u := range missing {
			p.cache[u] = &entry{state: loaded[i].State, stamp: loaded[i].Stamp}
		}
	}
	p.tick++
	env := features.Env{Cfg: &t.cfg.Features}
	for i := range evs {
		d := &evs[i]
		m := d.msg
		p.next = m.Offset + 1
		p.pending++
		if d.bad != nil {
			t.stats.deadLettered(d.bad.Reason)
			p.outbox = append(p.outbox, stream.DeadLetter(t.cfg.DLQTopic, *m, d.bad.Reason, d.bad))
			continue
		}
		t.stats.Valid.Add(1)
		e := p.cache[d.user]
		e.lastUse = p.tick
		if m.Offset <= e.stamp {
			// Already applied before a restart: the state in Redis
			// includes it.
			t.stats.Replayed.Add(1)
			p.wm.Observe(d.ev.TS.UnixMilli())
			continue
		}
		if e.state.IsDuplicate(d.ev.EventID) {
			t.stats.Duplicates.Add(1)
			continue
		}
		ts := d.ev.TS.UnixMilli()
		if p.wm.Late(ts) {
			de := &stream.DecodeError{Reason: stream.ReasonLate, Field: "ts",
				Msg: fmt.Sprintf("event time %s is older than the partition watermark %s (allowed lateness %s)",
					d.ev.TS.Format(time.RFC3339), time.UnixMilli(p.wm.Current()).UTC().Format(time.RFC3339), t.cfg.Features.AllowedLateness)}
			t.stats.deadLettered(de.Reason)
			p.outbox = append(p.outbox, stream.DeadLetter(t.cfg.DLQTopic, *m, de.Reason, de))
			continue
		}
		p.wm.Observe(ts)
		env.Watermark = p.wm.Current()
		e.state.Apply(&d.ev, env)
		e.stamp = m.Offset
		if !e.dirty {
			e.dirty = true
			p.dirtyList = append(p.dirtyList, d.user)
		}
		t.stats.Applied.Add(1)
		for _, s := range p.stages {
			p.outbox = s.Event(&StageEvent{Msg: m, Event: &d.ev, User: d.user, State: &e.state, Watermark: env.Watermark}, p.outbox)
		}
	}
	return nil
}

// unflushed reports whether anything processed is not yet durable: applied
// events, dead letters, or skipped records that advance the checkpoint.
func (p *processor) unflushed() bool {
	return p.pending > 0 || len(p.outbox) > 0 || (p.next >= 0 && p.next != p.flushed)
}

// flush makes everything processed so far durable: emitted messages first
// (acknowledged by Kafka), then user states with the checkpoint in one
// Redis round trip.
func (p *processor) flush(ctx context.Context, feed *stream.Feed) error {
	t := p.t
	if p.next < 0 || (p.next == p.flushed && p.pending == 0 && len(p.outbox) == 0) {
		p.pending = 0
		return nil
	}
	if len(p.outbox) > 0 {
		if err := t.sender.Send(ctx, p.outbox...); err != nil {
			return err
		}
		t.stats.Emitted.Add(int64(len(p.outbox)))
		clear(p.outbox)
		p.outbox = p.outbox[:0]
	}
	users := make([]features.UserWrite, 0, len(p.dirtyList))
	for _, u := range p.dirtyList {
		e := p.cache[u]
		b, err := e.state.MarshalBinary()
		if err != nil {
			return err
		}
		users = append(users, features.UserWrite{User: u, State: b, Stamp: e.stamp})
	}
	f := features.Flush{
		Topic:      p.part.Topic,
		Partition:  p.part.ID,
		Users:      users,
		Checkpoint: features.Checkpoint{Next: p.next, Watermark: p.wm.Current()},
	}
	st, err := t.store.Write(ctx, f)
	if err != nil {
		return err
	}
	t.stats.flushed(st, p.pending)
	for _, u := range p.dirtyList {
		p.cache[u].dirty = false
	}
	p.dirtyList = p.dirtyList[:0]
	p.pending = 0
	p.flushed = p.next
	feed.Committed(p.next)
	for _, s := range p.stages {
		s.Flushed()
	}
	p.evict()
	return nil
}

// evict trims the cache to its bound, least recently used first. Only
// clean entries are cached past a flush, so eviction loses nothing.
func (p *processor) evict() {
	limit := p.t.cfg.CacheUsers
	if len(p.cache) <= limit {
		return
	}
	type lu struct {
		u string
		t uint64
	}
	all := make([]lu, 0, len(p.cache))
	for u, e := range p.cache {
		all = append(all, lu{u, e.lastUse})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t < all[j].t })
	drop := len(p.cache) - limit*9/10
	for _, x := range all[:drop] {
		delete(p.cache, x.u)
	}
}
