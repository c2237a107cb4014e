package scorer

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// record is a fetched snapshot message with its decode result.
type record struct {
	offset int64
	snap   features.Snapshot
	bad    bool
}

// erasureNote asks a processor to forget users; done is closed after the
// processor's next flush that saved its item table without them.
type erasureNote struct {
	users []string
	done  chan struct{}
}

// processor owns one partition of the snapshot topic: its cached users,
// clock, item statistics and pending flush. Everything here is touched
// only by the processor's goroutine, except the erasure inbox.
type processor struct {
	s    *Scorer
	cfg  *Config
	part stream.Partition
	eng  *engine

	cache map[string]*user
	tick  uint64

	clock    int64     // partition clock, unix ms (event time, advanced when idle)
	evMax    int64     // newest snapshot time seen
	lastWall time.Time // wall time of the last record (or the start)
	idleBase int64     // clock when the last record arrived

	ckptNext  int64 // records below it were fully applied before a restart
	next      int64 // next offset to read (checkpoint candidate)
	flushed   int64 // next offset covered by the last flush
	pending   int
	firstPend time.Time

	itemsSaved time.Time // last save of the item table (zero: never)
	itemsForce bool      // save the item table at the next flush
	nextDue    int64     // earliest known timer (0: none known)
	zrem       []string  // stale timer entries to remove
	reidx      []*user   // users whose index and timer entries are re-asserted
	// itemsAt is the offset the in-memory item table covers up to
	// (exclusive). After a restart it trails the checkpoint while records
	// are relearnt; the table is saved only once it has caught up, so a
	// saved table always covers exactly the records below its items_next.
	itemsAt int64
	// dues holds the timers set since the last flush (not yet in the
	// partition's sorted set) and, during a batch, the stored timers that
	// come due within it, so that every timer fires when the clock passes
	// it, between the records, whatever the batching.
	dues dueHeap

	// obs holds the spans of the pending flush (consume spans it links
	// to, emit spans it ends); traced is whether Config.Tracer records,
	// observed whether anything needs the event time of the outputs.
	obs      *observability.Batch
	traced   bool
	observed bool

	mu       sync.Mutex
	inbox    []erasureNote
	awaiting []chan struct{} // erasures forgotten, waiting for the flush
}

func newProcessor(s *Scorer, p stream.Partition) *processor {
	pr := &processor{s: s, cfg: &s.cfg, part: p, cache: map[string]*user{}, next: -1, flushed: -1, ckptNext: -1,
		obs: observability.NewBatch(s.cfg.Tracer, nil), traced: s.cfg.Tracer.Enabled()}
	pr.observed = pr.traced || s.cfg.Metrics != nil
	pr.eng = newEngine(&s.cfg, s.stats, s.sketches)
	pr.eng.lookup = func(id string) *user { return pr.cache[id] }
	return pr
}

// Resume loads the checkpoint and the item table and returns the offset to
// read from: where the item table was saved, so that it relearns what it
// lost; records below the checkpoint only update it.
func (p *processor) Resume(ctx context.Context) (int64, error) {
	st := p.s.st
	if err := st.registerPartition(ctx, p.part.ID); err != nil {
		return 0, err
	}
	cp, err := st.loadCheckpoint(ctx, p.part.ID)
	if err != nil {
		return 0, err
	}
	p.clock, p.evMax = cp.Clock, cp.Clock+p.cfg.Lateness.Milliseconds()
	if cp.Clock == 0 {
		p.evMax = 0
	}
	p.lastWall, p.idleBase = p.cfg.Now(), p.clock
	start := cp.Next
	if err := p.eng.items.unmarshal(cp.Items); err != nil {
		p.cfg.Logger.Warn("scorer: item table unreadable; relearning from the checkpoint", "partition", p.part.ID, "err", err)
		p.itemsForce = true
	} else if cp.Items != nil && cp.ItemsNext >= 0 && cp.ItemsNext <= cp.Next {
		start = cp.ItemsNext
	}
	if due, ok, err := st.nextTimer(ctx, p.part.ID); err != nil {
		return 0, err
	} else if ok {
		p.nextDue = due
	}
	p.s.register(p)
	if cp.Next < 0 {
		p.itemsForce = true
		p.itemsAt = -1
		return kafka.FirstOffset, nil
	}
	p.itemsAt = start
	p.ckptNext, p.next, p.flushed = cp.Next, cp.Next, cp.Next
	if cp.Items == nil {
		p.itemsForce = true
	}
	return start, nil
}

// Run processes the partition until ctx is done.
func (p *processor) Run(ctx context.Context, feed *stream.Feed) (err error) {
	defer p.s.unregister(p)
	defer func() {
		if err != nil {
			p.obs.Discard(err) // the pending outputs are redone after the restart
		}
	}()
	cfg := p.cfg
	return feed.RunBatches(ctx, stream.BatchConfig{
		MaxBatch: cfg.MaxBatch, FlushInterval: cfg.FlushInterval, ShutdownTimeout: cfg.ShutdownTimeout, Tick: cfg.Tick,
	}, batches{p, feed})
}

// batches drives the processor with stream.Feed.RunBatches: a flush also
// fires the timers that are due, except the final one of a generation;
// every Tick moves an idle partition's clock with processing time.
type batches struct {
	p    *processor
	feed *stream.Feed
}

func (b batches) Process(ctx context.Context, batch []kafka.Message) error {
	return b.p.process(ctx, batch)
}
func (b batches) Unflushed() (time.Time, bool) { return b.p.firstPend, b.p.unflushed() }
func (b batches) Full() bool                   { return b.p.pending >= b.p.cfg.FlushEvents }
func (b batches) Tick()                        { b.p.advanceIdle(b.p.cfg.Now()) }
func (b batches) Flush(ctx context.Context, final bool) error {
	if final {
		return b.p.flush(ctx, b.feed)
	}
	return b.p.flushAndFire(ctx, b.feed)
}

// advanceIdle moves the clock with processing time once the partition has
// been idle for IdleAfter.
func (p *processor) advanceIdle(now time.Time) {
	if p.clock == 0 {
		return
	}
	if idle := now.Sub(p.lastWall); idle >= p.cfg.IdleAfter {
		p.clock = max(p.clock, p.idleBase+int64(float64(idle.Milliseconds())*p.cfg.IdleRate))
	}
}

// observeTime advances the clock with a record's event time.
func (p *processor) observeTime(ts int64) {
	p.evMax = max(p.evMax, ts)
	p.clock = max(p.clock, p.evMax-p.cfg.Lateness.Milliseconds())
	p.lastWall, p.idleBase = p.cfg.Now(), p.clock
}

// drainInbox applies erasure notes: the users are dropped from the cache
// and the item table.
func (p *processor) drainInbox() {
	p.mu.Lock()
	notes := p.inbox
	p.inbox = nil
	p.mu.Unlock()
	for _, n := range notes {
		for _, u := range n.users {
			if e := p.cache[u]; e != nil {
				e.erased = true
				if !e.dirty {
					delete(p.cache, u)
				}
			}
			p.eng.items.forget(u)
		}
		p.itemsForce = true
		p.awaiting = append(p.awaiting, n.done)
	}
}

// notify queues an erasure note (called by Scorer.Forget).
func (p *processor) notify(n erasureNote) {
	p.mu.Lock()
	p.inbox = append(p.inbox, n)
	p.mu.Unlock()
}

// loadUsers makes sure every user in ids is cached and refreshes the
// erasure marks of the cached ones, in one round trip.
func (p *processor) loadUsers(ctx context.Context, ids []string) error {
	var missing, cached []string
	seen := make(map[string]bool, len(ids))
	for _, u := range ids {
		if seen[u] {
			continue
		}
		seen[u] = true
		if _, ok := p.cache[u]; ok {
			cached = append(cached, u)
		} else {
			missing = append(missing, u)
		}
	}
	if len(missing)+len(cached) == 0 {
		return nil
	}
	ls, erased, err := p.s.st.load(ctx, p.part.ID, missing, cached)
	if err != nil {
		return err
	}
	for i, id := range missing {
		u := &user{id: id, o: ls[i].o, q: ls[i].q, erased: ls[i].erased}
		if err := u.st.unmarshal(ls[i].state); err != nil {
			p.cfg.Logger.Warn("scorer: unreadable user state; starting afresh", "partition", p.part.ID, "err", err)
		}
		if err := u.mem.UnmarshalBinary(ls[i].mem); err != nil {
			p.cfg.Logger.Warn("scorer: unreadable membership; starting afresh", "partition", p.part.ID, "err", err)
		}
		u.flushedDue = u.st.Due
		p.cache[id] = u
	}
	for id := range erased {
		u := p.cache[id]
		u.erased = true
		p.eng.items.forget(id)
	}
	return nil
}

// process handles a batch of fetched messages: it loads the users the
// batch needs (its users, the watchers of the items it prices, the users
// whose stored timers come due within it), then handles the records in
// order, firing each timer as the clock passes it.
func (p *processor) process(ctx context.Context, batch []kafka.Message) error {
	if len(batch) == 0 {
		return nil
	}
	p.drainInbox()
	if !p.unflushed() {
		p.firstPend = time.Now()
	}
	recs := make([]record, len(batch))
	ids := make([]string, 0, len(batch))
	evMax := p.evMax
	for i := range batch {
		r := &recs[i]
		r.offset = batch[i].Offset
		s, err := features.DecodeSnapshot(batch[i].Value)
		if err != nil || s.User != string(batch[i].Key) {
			r.bad = true
			continue
		}
		r.snap = s
		evMax = max(evMax, s.TS.UnixMilli())
		if r.offset < p.ckptNext {
			continue
		}
		ids = append(ids, s.User)
		if s.ItemID != "" && s.Price > 0 {
			for _, w := range p.eng.items.watchers(s.ItemID) {
				ids = append(ids, w.User)
			}
		}
	}
	endClock := max(p.clock, evMax-p.cfg.Lateness.Milliseconds())
	var stored []redis.Z
	if p.nextDue > 0 && p.nextDue <= endClock {
		zs, err := p.s.st.dueTimers(ctx, p.part.ID, endClock, p.cfg.MaxTimers)
		if err != nil {
			return err
		}
		stored = zs
		for _, z := range zs {
			id, _ := z.Member.(string)
			ids = append(ids, id)
		}
	}
	if err := p.loadUsers(ctx, ids); err != nil {
		return err
	}
	p.eng.begin(p.s.catalogue(), p.cfg.Champion.Load())
	p.tick++
	for _, z := range stored {
		id, _ := z.Member.(string)
		if u := p.cache[id]; u != nil && u.st.LastTS > 0 && !u.erased {
			if u.st.Due == int64(z.Score) {
				p.dues.push(u)
			} else if !u.dirty {
				p.markReindex(u) // a stale entry: re-assert the real one
			}
		} else {
			p.zrem = append(p.zrem, id)
		}
	}
	for i := range recs {
		p.fireDue()
		if err := p.handleObserved(ctx, &recs[i], &batch[i]); err != nil {
			return err
		}
		// Records below the checkpoint (relearnt after a restart) never
		// move the checkpoint back.
		p.next = max(p.next, recs[i].offset+1)
		p.itemsAt = recs[i].offset + 1
		p.pending++
	}
	p.fireDue()
	return nil
}

// fireDue fires the timers in dues that the clock has passed.
func (p *processor) fireDue() {
	for {
		u, due, ok := p.dues.popDue(p.clock)
		if !ok {
			return
		}
		u.lastUse = p.tick
		p.eng.fire(u, due, p.clock)
		p.dues.push(u)
	}
}

// handle applies one record. It is the one place a snapshot is handled.
func (p *processor) handle(r *record) error {
	st := p.s.stats
	if r.bad {
		st.invalid.Add(1)
		return nil
	}
	s := &r.snap
	ts := s.TS.UnixMilli()
	if r.offset < p.ckptNext {
		// Fully applied before a restart; only the item table relearns.
		p.observeTime(ts)
		p.eng.learn(s)
		return nil
	}
	u := p.cache[s.User]
	u.lastUse = p.tick
	if u.erased {
		return nil // erased meanwhile: nothing about the user is kept
	}
	if r.offset <= u.o {
		// Applied to the user before a restart; its index entries may
		// not have been written, so they are re-asserted.
		st.replayed.Add(1)
		p.observeTime(ts)
		p.eng.learn(s)
		p.markReindex(u)
		return nil
	}
	start := time.Now()
	err := p.eng.snapshot(u, s, r.offset, p.clock)
	p.observeTime(ts)
	if !s.IsConsent() { // a consent snapshot is counted as such, not scored
		st.handleNs.Add(int64(time.Since(start)))
		st.snapshots.Add(1)
	}
	p.dues.push(u)
	return err
}

// handleObserved handles r, read as msg, within msg's consume span (when
// tracing) and gives the changes and triggers it caused their event time
// and emit spans.
func (p *processor) handleObserved(ctx context.Context, r *record, msg *kafka.Message) error {
	n := len(p.eng.out)
	if !p.observed {
		err := p.handle(r)
		p.markSource(r, n)
		return err
	}
	var span, step trace.Span
	if p.traced {
		ctx, span = p.cfg.Tracer.StartConsume(ctx, msg)
		// The score step: the model, the segments and the triggers of
		// this snapshot (explanations are computed at the flush).
		_, step = p.cfg.Tracer.Start(ctx, observability.SpanScore)
	}
	err := p.handle(r)
	if p.traced {
		step.End()
	}
	p.markSource(r, n)
	for i := n; i < len(p.eng.out); i++ {
		o := &p.eng.out[i]
		if o.appended.IsZero() {
			continue // a timer that fired first: not caused by this event
		}
		o.event = r.snap.TS
		if p.traced {
			p.obs.Emit(ctx, &o.msg, o.output(), time.Time{}, time.Time{})
		}
	}
	if p.traced {
		if !r.bad {
			p.obs.Event(span, r.snap.TS, msg.Time)
		}
		observability.End(span, err)
	}
	return err
}

// markSource gives the changes and triggers that r's event caused (those
// from out[n:] with its append time; a timer that fired first has none) the
// header HeaderSourceEvent with the event's id.
func (p *processor) markSource(r *record, n int) {
	for i := n; i < len(p.eng.out); i++ {
		o := &p.eng.out[i]
		if o.appended.IsZero() || r.bad || r.snap.ID == "" {
			continue
		}
		o.msg.Headers = append(o.msg.Headers, kafka.Header{Key: HeaderSourceEvent, Value: []byte(r.snap.ID)})
	}
}

// unflushed reports whether anything processed is not yet durable.
func (p *processor) unflushed() bool {
	return p.pending > 0 || len(p.eng.out) > 0 || len(p.eng.dirty) > 0 || (p.next >= 0 && p.next != p.flushed)
}

// flushAndFire flushes, then fires due timers while some are due.
func (p *processor) flushAndFire(ctx context.Context, feed *stream.Feed) error {
	p.drainInbox()
	if err := p.flush(ctx, feed); err != nil {
		return err
	}
	for round := 0; round < 8 && p.nextDue > 0 && p.clock >= p.nextDue; round++ {
		more, err := p.fireTimers(ctx)
		if err != nil {
			return err
		}
		if err := p.flush(ctx, feed); err != nil {
			return err
		}
		if !more {
			break
		}
	}
	return nil
}

// fireTimers fires the timers due at the partition clock, up to
// MaxTimers; more reports that more may be due.
func (p *processor) fireTimers(ctx context.Context) (more bool, err error) {
	st := p.s.st
	zs, err := st.dueTimers(ctx, p.part.ID, p.clock, p.cfg.MaxTimers)
	if err != nil {
		return false, err
	}
	if len(zs) < p.cfg.MaxTimers {
		// Everything due now is in zs; the next due comes after.
		p.nextDue = 0
		if due, ok, err := st.nextTimer(ctx, p.part.ID); err != nil {
			return false, err
		} else if ok && due > p.clock {
			p.nextDue = due
		}
	}
	if len(zs) == 0 {
		return false, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i], _ = z.Member.(string)
	}
	if err := p.loadUsers(ctx, ids); err != nil {
		return false, err
	}
	p.eng.begin(p.s.catalogue(), p.cfg.Champion.Load())
	p.tick++
	if p.next < 0 {
		p.next = p.flushed
	}
	for i, z := range zs {
		u := p.cache[ids[i]]
		due := int64(z.Score)
		switch {
		case u == nil || u.erased || u.st.LastTS == 0:
			p.zrem = append(p.zrem, ids[i])
			if u != nil && !u.dirty {
				delete(p.cache, ids[i])
			}
			continue
		case u.st.Due != due:
			if !u.dirty {
				p.markReindex(u) // a stale entry: re-assert the real one
			}
			continue
		}
		p.dues.push(u)
	}
	p.fireDue()
	return len(zs) == p.cfg.MaxTimers, nil
}

// flush makes everything processed durable: emitted messages first
// (acknowledged by Kafka), then the users' states (phase 1), then index
// and timer entries with the checkpoint (phase 2). With tracing, a
// redis_flush span covers it and the emit spans end with it.
func (p *processor) flush(ctx context.Context, feed *stream.Feed) (err error) {
	if !p.unflushed() && len(p.zrem) == 0 && len(p.reidx) == 0 && !p.itemsForce {
		return nil
	}
	if p.next < 0 && len(p.eng.dirty) == 0 && len(p.eng.out) == 0 {
		// Nothing read yet, so no item table was loaded either.
		p.pending = 0
		for _, d := range p.awaiting {
			close(d)
		}
		p.awaiting = nil
		return nil
	}
	if p.traced {
		var span trace.Span
		ctx, span = p.obs.StartFlush(ctx)
		users := len(p.eng.dirty)
		defer func() { p.obs.EndFlush(span, users, 0, 0, err) }()
	}
	if err := p.emit(ctx); err != nil {
		return err
	}
	dirty := p.eng.dirty
	writes := make([]userWrite, 0, len(dirty))
	for _, u := range dirty {
		if err := p.eng.explain(u); err != nil {
			return err
		}
		writes = append(writes, p.userWrite(u))
	}
	res, err := p.s.st.writeUsers(ctx, p.part.ID, writes)
	if err != nil {
		return err
	}
	var idx []indexOp
	var timers []timerOp
	cat := p.s.catalogue()
	for i, u := range dirty {
		switch res[i] {
		case writeFenced:
			return ErrFenced
		case writeErased:
			u.erased = true
			p.eng.items.forget(u.id)
			p.itemsForce = true
			continue
		case writeOK:
		default:
			return errors.New("scorer: unexpected write result " + strconv.FormatInt(res[i], 10))
		}
		if u.gone {
			idx = append(idx, p.reindexOps(u, cat, true)...)
			timers = append(timers, timerOp{user: u.id})
			continue
		}
		if u.reindex {
			idx = append(idx, p.reindexOps(u, cat, false)...)
		} else {
			idx = append(idx, u.idx...)
		}
		if u.st.Due != u.flushedDue || u.reindex {
			timers = append(timers, timerOp{user: u.id, due: u.st.Due})
		}
	}
	for _, u := range p.reidx {
		if u.reindex && !u.dirty && !u.erased {
			idx = append(idx, p.reindexOps(u, cat, false)...)
			timers = append(timers, timerOp{user: u.id, due: u.st.Due})
		}
	}
	for _, id := range p.zrem {
		timers = append(timers, timerOp{user: id})
	}
	next := p.next
	if next < 0 {
		next = p.flushed
	}
	cp := checkpoint{Next: next, Clock: p.clock}
	var items []byte
	now := p.cfg.Now()
	if next >= 0 && p.itemsAt >= next && (p.itemsForce || now.Sub(p.itemsSaved) >= p.cfg.Items.SaveInterval) {
		items = p.eng.items.marshal()
	}
	if next >= 0 {
		if err := p.s.st.commit(ctx, p.part.ID, idx, timers, cp, items); err != nil {
			return err
		}
	}
	p.s.stats.flushes.Add(1)
	for _, t := range timers {
		if t.due > 0 && (p.nextDue == 0 || t.due < p.nextDue) {
			p.nextDue = t.due
		}
	}
	for i, u := range dirty {
		u.dirty, u.scoresDirty, u.reindex = false, false, false
		u.idx = u.idx[:0]
		u.flushedDue = u.st.Due
		if u.gone || res[i] == writeErased {
			delete(p.cache, u.id)
		}
	}
	for _, u := range p.reidx {
		u.reindex = false
	}
	p.reidx = p.reidx[:0]
	p.eng.dirty = p.eng.dirty[:0]
	p.zrem = p.zrem[:0]
	p.dues.reset() // every timer is in the sorted set now
	if items != nil {
		p.itemsSaved, p.itemsForce = now, false
		for _, d := range p.awaiting {
			close(d)
		}
		p.awaiting = nil
	}
	p.pending = 0
	if next >= 0 {
		p.flushed = next
		p.ckptNext = max(p.ckptNext, next)
		feed.Committed(next)
	}
	p.evict()
	return nil
}

// markReindex asks the next flush to re-assert u's index and timer
// entries.
func (p *processor) markReindex(u *user) {
	if !u.reindex {
		u.reindex = true
		p.reidx = append(p.reidx, u)
	}
}

// reindexOps re-asserts u's index entries: member of its segments, not of
// the catalogue's others (of none when gone).
func (p *processor) reindexOps(u *user, cat *segment.Catalogue, gone bool) []indexOp {
	var ops []indexOp
	for _, s := range cat.Segments() {
		ops = append(ops, indexOp{user: u.id, seg: s.Name, add: !gone && u.mem.Has(s.Name)})
	}
	for name := range u.mem.All() {
		if _, ok := cat.Segment(name); !ok {
			ops = append(ops, indexOp{user: u.id, seg: name, add: !gone})
		}
	}
	if gone {
		for _, op := range u.idx {
			if !slices.ContainsFunc(ops, func(o indexOp) bool { return o.seg == op.seg }) {
				ops = append(ops, indexOp{user: u.id, seg: op.seg})
			}
		}
	}
	return ops
}

// userWrite builds u's phase-1 write.
func (p *processor) userWrite(u *user) userWrite {
	w := userWrite{user: u.id, o: u.o, q: u.q, due: u.st.Due, gone: u.gone}
	if u.gone {
		return w
	}
	if u.mem.Len() > 0 {
		w.mem, _ = u.mem.MarshalBinary()
	}
	w.state = u.st.marshal(make([]byte, 0, 512))
	if u.scoresDirty {
		w.scores = p.scoreFields(u)
	}
	return w
}

// scoreFields renders the user's latest scores as the `scores` hash:
// field = score name, value = "<value>|<model version>|<feature>:<contribution>,…".
func (p *processor) scoreFields(u *user) []any {
	var sc scores
	v := project(u.st.Vec, u.st.LastTS, max(u.st.EvalAt, u.st.LastTS))
	p.eng.scores(u, &v, &sc)
	out := make([]any, 0, 2*numScores)
	ver := strconv.FormatInt(u.st.Model, 10)
	for i, x := range sc {
		if x != x { // NaN: missing
			continue
		}
		b := strconv.AppendFloat(make([]byte, 0, 96), x, 'g', 10, 64)
		b = append(b, '|')
		b = append(b, ver...)
		b = append(b, '|')
		var cs []contribution
		neg := false
		switch i {
		case sPurchase:
			cs = u.st.Explain[headPurchase]
		case sRepeat:
			cs = u.st.Explain[headRepeat]
		case sChurn:
			cs, neg = u.st.Explain[headRepeat], true
		}
		for j, c := range cs {
			if j > 0 {
				b = append(b, ',')
			}
			d := c.Delta
			if neg {
				d = -d
			}
			b = append(b, c.Input...)
			b = append(b, ':')
			b = strconv.AppendFloat(b, d, 'g', 6, 64)
		}
		out = append(out, scoreNames[i], string(b))
	}
	if len(out) == 0 {
		return []any{"-"}
	}
	return out
}

// emit sends the pending messages and waits for their acknowledgement. It
// is the one place messages are emitted.
func (p *processor) emit(ctx context.Context) error {
	out := p.eng.out
	if len(out) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(out))
	for i := range out {
		msgs[i] = out[i].msg
	}
	if err := p.s.sender.Send(ctx, msgs...); err != nil {
		return err
	}
	now := p.cfg.Now()
	st := p.s.stats
	st.emitted.Add(int64(len(out)))
	st.mu.Lock()
	for _, o := range out {
		switch o.change {
		case "enter":
			st.enters[o.name]++
		case "exit":
			st.exits[o.name]++
		default:
			st.triggers[o.name]++
		}
	}
	st.mu.Unlock()
	for i := range out {
		o := &out[i]
		if o.appended.IsZero() {
			continue
		}
		if o.change != "" {
			st.changeLatency.observe(now.Sub(o.appended))
			p.s.changeLat.Observe(now, o.event, o.appended, trace.SpanContext{})
		} else {
			st.triggerLatency.observe(now.Sub(o.appended))
			p.s.triggerLat.Observe(now, o.event, o.appended, trace.SpanContext{})
		}
	}
	clear(p.eng.out)
	p.eng.out = p.eng.out[:0]
	return nil
}

// evict trims the cache to its bound, least recently used first; only
// clean users are cached past a flush.
func (p *processor) evict() {
	limit := p.cfg.CacheUsers
	if len(p.cache) <= limit {
		return
	}
	type lu struct {
		id string
		t  uint64
	}
	all := make([]lu, 0, len(p.cache))
	for id, u := range p.cache {
		all = append(all, lu{id, u.lastUse})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t < all[j].t })
	for _, x := range all[:len(p.cache)-limit*9/10] {
		delete(p.cache, x.id)
	}
}
