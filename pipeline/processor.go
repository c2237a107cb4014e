package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/stream"
)

// StateStore is what a partition processor needs from the feature store.
type StateStore interface {
	LoadCheckpoint(ctx context.Context, topic string, partition int) (features.Checkpoint, error)
	Load(ctx context.Context, topic string, partition int, load, check []string) ([]features.Loaded, map[string]features.Erasure, error)
	Write(ctx context.Context, f features.Flush) (features.FlushStats, error)
}

// ExpiringStore is implemented by a StateStore whose user states expire
// after StateTTL without a write (features.Store). The processor then
// re-reads a cached user whose last write may have expired, instead of
// resurrecting the expired profile from its cache.
type ExpiringStore interface {
	StateTTL() time.Duration // ≤ 0: states do not expire
}

// Sender writes messages and returns once they are acknowledged.
type Sender interface {
	Send(ctx context.Context, msgs ...kafka.Message) error
}

// entry is a cached user.
type entry struct {
	state    features.State
	stamp    int64 // offset of the last applied event of this partition (-1 none)
	dirty    bool
	lastUse  uint64
	erased   bool  // an erasure marker exists: events are not applied
	erasedAt int64 // unix ms of the erasure
	revive   bool  // a new consent after erasure: delete the marker on flush
	// fresh is when the cached state may no longer match Redis (its key
	// may have expired); zero: re-read before the next use unless dirty.
	fresh time.Time
}

// forget drops what is cached of an erased user's profile, keeping the
// erasure and what the cache itself needs (stamp, lastUse).
func (e *entry) forget() {
	*e = entry{stamp: e.stamp, erased: true, erasedAt: e.erasedAt, lastUse: e.lastUse}
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
	aliases   map[string]string // anonymous id → user, written with the flush
	stages    []PartitionStage
	tr        *observability.Tracer
	obs       *observability.Batch // spans and latencies of the pending flush
	observed  bool                 // tracing or metrics on
	recs      []decoded            // scratch of process
	// More scratch of process: the batch's users to load, to check, seen.
	missing, cached []string
	seen            map[string]bool
}

func newProcessor(t *Topology, p stream.Partition) *processor {
	return &processor{t: t, part: p, cache: make(map[string]*entry), aliases: map[string]string{}, next: -1, flushed: -1,
		tr: t.cfg.Tracer, obs: observability.NewBatch(t.cfg.Tracer, t.cfg.Metrics), observed: t.cfg.Tracer.Enabled() || t.cfg.Metrics != nil}
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
func (p *processor) Run(ctx context.Context, feed *stream.Feed) (err error) {
	defer func() {
		if err != nil {
			p.obs.Discard(err) // the partition restarts from its checkpoint
		}
	}()
	cfg := &p.t.cfg
	return feed.RunBatches(ctx, stream.BatchConfig{
		MaxBatch: cfg.MaxBatch, FlushInterval: cfg.FlushInterval, ShutdownTimeout: cfg.ShutdownTimeout,
	}, batches{p, feed})
}

// batches drives the processor with stream.Feed.RunBatches.
type batches struct {
	p    *processor
	feed *stream.Feed
}

func (b batches) Process(ctx context.Context, batch []kafka.Message) error {
	return b.p.process(ctx, batch)
}
func (b batches) Unflushed() (time.Time, bool)            { return b.p.firstPend, b.p.unflushed() }
func (b batches) Full() bool                              { return b.p.pending >= b.p.t.cfg.FlushEvents }
func (b batches) Flush(ctx context.Context, _ bool) error { return b.p.flush(ctx, b.feed) }
func (b batches) Tick()                                   {}

// kind says what a record is.
type kind uint8

const (
	kindEvent    kind = iota // a clickstream event for its own profile
	kindRerouted             // an anonymous event forwarded to its merged profile
	kindMerge                // a MergeRequest
)

// decoded is a message with its decode result.
type decoded struct {
	msg   *kafka.Message
	kind  kind
	ev    stream.Event
	merge stream.MergeRequest
	user  string // the profile the record applies to (its key)
	bad   *stream.DecodeError
	ctx   context.Context // holds span
	span  trace.Span      // the record's consume span
}

func (d *decoded) err() error {
	if d.bad == nil {
		return nil
	}
	return d.bad
}

// pseudo returns the stored id of a raw user or anonymous id.
func (p *processor) pseudo(id string) string {
	if p.t.cfg.Pseudonyms == nil {
		return id
	}
	return p.t.cfg.Pseudonyms.Pseudonym(id)
}

// classify decodes m and decides which profile it belongs to.
func (p *processor) classify(m *kafka.Message, d *decoded) {
	d.msg = m
	key := string(m.Key)
	_, pseudonymKey := stream.HeaderValue(m.Headers, stream.HeaderKeyPseudonym)
	if v, ok := stream.HeaderValue(m.Headers, stream.HeaderInternal); ok {
		if v != stream.InternalMerge {
			d.bad = &stream.DecodeError{Reason: stream.ReasonBadInternal, Msg: fmt.Sprintf("unknown internal record %q", v)}
			return
		}
		mr, err := stream.DecodeMergeRequest(m.Value)
		if err != nil || mr.Into != key || !pseudonymKey {
			d.bad = &stream.DecodeError{Reason: stream.ReasonBadInternal, Msg: "unreadable merge record, or keyed by another profile"}
			return
		}
		d.kind, d.merge, d.user = kindMerge, mr, key
		return
	}
	// Decoded in place: a local Event would escape to the heap through
	// the masker.
	var err error
	if d.ev, err = p.t.decoder.Decode(m.Value); err != nil {
		d.ev = stream.Event{}
		var de *stream.DecodeError
		if !errors.As(err, &de) {
			de = &stream.DecodeError{Reason: stream.ReasonMalformed, Msg: err.Error()}
		}
		d.bad = de
		return
	}
	ev := &d.ev
	if p.t.cfg.Masker != nil && p.t.cfg.Masker.DropPII(ev) {
		p.t.stats.PIIMasked.Add(1)
	}
	if from, ok := stream.HeaderValue(m.Headers, stream.HeaderReroutedFrom); ok {
		if !pseudonymKey || from != p.pseudo(ev.ProfileKey()) {
			d.bad = &stream.DecodeError{Reason: stream.ReasonBadInternal, Msg: "rerouted event does not belong to the id it was forwarded from"}
			return
		}
		d.kind, d.user = kindRerouted, key
		return
	}
	d.user = p.pseudo(key)
	switch {
	case key == ev.ProfileKey():
	case ev.Type == stream.TypeIdentify && key == ev.AnonymousID:
		// The anonymous side of an identify: hands the anonymous
		// profile over to the user.
	default:
		d.bad = &stream.DecodeError{Reason: stream.ReasonKeyMismatch, Field: "user_id",
			Msg: "message key is not the event's user_id (or anonymous_id when user_id is absent)"}
	}
}

func (p *processor) process(ctx context.Context, batch []kafka.Message) error {
	t := p.t
	if len(batch) == 0 {
		return nil
	}
	if !p.unflushed() {
		p.firstPend = time.Now()
	}
	if cap(p.recs) < len(batch) {
		p.recs = make([]decoded, len(batch))
	}
	recs := p.recs[:len(batch)]
	defer clear(recs)
	// The batch's users: scratch reused from batch to batch.
	missing, cached, seen := p.missing[:0], p.cached[:0], p.seen
	if seen == nil {
		seen = map[string]bool{}
		p.seen = seen
	}
	defer func() {
		clear(seen)
		clear(missing)
		clear(cached)
		p.missing, p.cached = missing[:0], cached[:0]
	}()
	now := time.Now()
	for i := range batch {
		d := &recs[i]
		t.stats.Consumed.Add(1)
		d.ctx, d.span = p.tr.StartConsume(ctx, &batch[i])
		_, span := p.tr.Start(d.ctx, observability.SpanDecode)
		p.classify(&batch[i], d)
		observability.End(span, d.err())
		if d.bad != nil || seen[d.user] {
			continue
		}
		seen[d.user] = true
		if e, ok := p.cache[d.user]; ok && (e.dirty || now.Before(e.fresh)) {
			cached = append(cached, d.user)
		} else {
			missing = append(missing, d.user)
		}
	}
	if len(missing)+len(cached) > 0 {
		// One round trip: load the users not cached, and check every
		// user of the batch for an erasure that happened meanwhile.
		loaded, erased, err := t.store.Load(ctx, p.part.Topic, p.part.ID, missing, cached)
		if err != nil {
			return err
		}
		t.stats.RedisLoads.Add(1)
		for i, u := range missing {
			// A loaded state's remaining TTL is unknown: it is re-read
			// before its next use unless written (or never expires).
			p.cache[u] = &entry{state: loaded[i].State, stamp: loaded[i].Stamp, fresh: p.t.freshUntil(time.Time{})}
		}
		for u, e := range erased {
			ent := p.cache[u]
			ent.erased, ent.erasedAt = true, e.At
			if !ent.dirty {
				ent.forget() // the profile is gone
			}
		}
	}
	p.tick++
	for i := range recs {
		d := &recs[i]
		n := len(p.outbox)
		p.handle(d)
		if p.observed {
			p.traceOutputs(d, n)
		}
		d.span.End()
	}
	return nil
}

// traceOutputs records the messages the record d caused (outbox[from:]):
// their emit spans and trace headers, and their latencies once flushed.
func (p *processor) traceOutputs(d *decoded, from int) {
	for i := from; i < len(p.outbox); i++ {
		p.obs.Emit(d.ctx, &p.outbox[i], p.t.output(&p.outbox[i]), d.ev.TS, d.msg.Time)
	}
}

// handle applies one classified record.
func (p *processor) handle(d *decoded) {
	t := p.t
	m := d.msg
	p.next = m.Offset + 1
	p.pending++
	if d.bad != nil {
		p.deadLetter(m, d.bad)
		return
	}
	t.stats.Valid.Add(1)
	e := p.cache[d.user]
	e.lastUse = p.tick
	if m.Offset <= e.stamp {
		// Already applied before a restart: the state in Redis
		// includes it.
		t.stats.Replayed.Add(1)
		if d.kind != kindMerge {
			p.wm.Observe(d.ev.TS.UnixMilli())
		}
		return
	}
	switch d.kind {
	case kindMerge:
		p.applyMerge(d, e, m)
	default:
		p.applyEvent(d, e, m)
	}
	if e.stamp == m.Offset {
		p.obs.Event(d.span, d.ev.TS, m.Time) // durable with the next flush
	}
}

func (p *processor) deadLetter(m *kafka.Message, de *stream.DecodeError) {
	p.t.stats.deadLettered(de.Reason)
	dl := stream.DeadLetter(p.t.cfg.DLQTopic, *m, de.Reason, de)
	if p.t.cfg.Masker != nil {
		// The original bytes, minus personal data.
		dl.Value, _ = p.t.cfg.Masker.MaskPayload(dl.Value)
	}
	p.outbox = append(p.outbox, dl)
}

func (p *processor) markDirty(u string, e *entry, offset int64) {
	e.stamp = offset
	if !e.dirty {
		e.dirty = true
		p.dirtyList = append(p.dirtyList, u)
	}
}

func (p *processor) applyEvent(d *decoded, e *entry, m *kafka.Message) {
	t := p.t
	ev := &d.ev
	if e.erased {
		revive := ev.Type == stream.TypeConsent && ev.Consent.Profiling != nil && *ev.Consent.Profiling &&
			ev.TS.UnixMilli() > e.erasedAt
		if !revive {
			t.stats.Erased.Add(1)
			return
		}
		// The user comes back with a new consent: a fresh profile.
		e.erased, e.revive = false, true
		e.state = features.State{}
	}
	_, span := p.tr.Start(d.ctx, observability.SpanDedupe)
	dup := e.state.IsDuplicate(ev.EventID)
	span.End()
	if dup {
		t.stats.Duplicates.Add(1)
		return
	}
	ts := ev.TS.UnixMilli()
	// A forwarded event was on time where it was first accepted; the
	// detour through the anonymous id's partition must not make it late
	// here. It is applied like a merge: exact for every feature except
	// sessions the user's profile has already closed.
	if d.kind != kindRerouted && p.wm.Late(ts) {
		p.deadLetter(m, &stream.DecodeError{Reason: stream.ReasonLate, Field: "ts",
			Msg: fmt.Sprintf("event time %s is older than the partition watermark %s (allowed lateness %s)",
				ev.TS.Format(time.RFC3339), time.UnixMilli(p.wm.Current()).UTC().Format(time.RFC3339), t.cfg.Features.AllowedLateness)})
		return
	}
	p.wm.Observe(ts)
	env := features.Env{Cfg: &t.cfg.Features, Watermark: p.wm.Current()}

	if target := e.state.MergedInto; target != "" && d.kind == kindEvent && ev.Type != stream.TypeIdentify {
		// This anonymous profile was handed over: its events belong to
		// the user now. Forward, and let the user's partition dedupe.
		p.forward(m, target, e.state.MergedRoute, d.user)
		return
	}
	if ev.Type == stream.TypeIdentify {
		p.identify(d, e, m, env)
		return
	}
	_, span = p.tr.Start(d.ctx, observability.SpanFeatureUpdate)
	res := e.state.Apply(ev, env)
	span.End()
	switch res {
	case features.Duplicate:
		t.stats.Duplicates.Add(1)
		return
	case features.Suppressed:
		t.stats.Suppressed.Add(1)
		p.markDirty(d.user, e, m.Offset) // the event id is remembered
		return
	}
	p.markDirty(d.user, e, m.Offset)
	t.stats.Applied.Add(1)
	if e.state.ProfilingOff && ev.Type != stream.TypeConsent {
		// Profiling consent withdrawn: nothing derived leaves the
		// processor. (Apply suppresses behavioural events then; this
		// guards the stages against any other.) The consent event itself
		// still reaches them, so that the withdrawal is published: the
		// state holds no derived feature any more (State.Apply erased
		// them), and its snapshot carries the consent flags only.
		return
	}
	_, span = p.tr.Start(d.ctx, observability.SpanScore)
	for _, s := range p.stages {
		p.outbox = s.Event(&StageEvent{Msg: m, Event: ev, User: d.user, State: &e.state, Watermark: env.Watermark}, p.outbox)
	}
	span.End()
}

// routeHeaders marks a record keyed by a pseudonym and routes it to the
// partition of the raw id whose murmur2 hash is route.
func routeHeaders(h []kafka.Header, route uint32) []kafka.Header {
	return append(h,
		kafka.Header{Key: stream.HeaderKeyPseudonym, Value: []byte("1")},
		kafka.Header{Key: stream.HeaderRouteHash, Value: []byte(strconv.FormatUint(uint64(route), 10))})
}

// forward re-publishes m to the profile target (a stored id, routed by
// route), marked as coming from from.
func (p *processor) forward(m *kafka.Message, target string, route uint32, from string) {
	h := make([]kafka.Header, 0, len(m.Headers)+3)
	for _, x := range m.Headers {
		switch x.Key {
		case stream.HeaderReroutedFrom, stream.HeaderKeyPseudonym, stream.HeaderRouteHash:
		default:
			h = append(h, x)
		}
	}
	h = append(h, kafka.Header{Key: stream.HeaderReroutedFrom, Value: []byte(from)})
	h = routeHeaders(h, route)
	p.outbox = append(p.outbox, kafka.Message{Topic: p.t.cfg.Topic, Key: []byte(target), Value: m.Value, Headers: h})
	p.t.stats.Forwarded.Add(1)
}

// identify links an anonymous id to a user. On the user's side it records
// the link and sends the identify on to the anonymous id's partition; on
// the anonymous side it hands the anonymous profile over (a MergeRequest
// keyed by the user) and from then on forwards the anonymous id's events.
func (p *processor) identify(d *decoded, e *entry, m *kafka.Message, env features.Env) {
	t := p.t
	ev := &d.ev
	e.state.Apply(ev, env) // remembers the event id
	p.markDirty(d.user, e, m.Offset)
	t.stats.Applied.Add(1)
	userID := p.pseudo(ev.UserID)
	if d.user == userID && string(m.Key) == ev.UserID {
		e.state.Link(p.pseudo(ev.AnonymousID))
		fwd := kafka.Message{Topic: t.cfg.Topic, Key: []byte(ev.AnonymousID), Value: m.Value, Headers: m.Headers}
		p.outbox = append(p.outbox, fwd)
		return
	}
	// Anonymous side.
	if e.state.MergedInto != "" {
		if e.state.MergedInto != userID {
			t.stats.IdentityConflicts.Add(1)
		}
		return
	}
	handed := e.state
	handed.MergedInto = ""
	b, err := handed.MarshalBinary()
	if err != nil {
		return
	}
	mr := stream.MergeRequest{MergeID: ev.EventID + "/merge", From: d.user, Into: userID, TS: ev.TS.UnixMilli(), State: b}
	v, err := json.Marshal(mr)
	if err != nil {
		return
	}
	route := stream.Murmur2([]byte(ev.UserID))
	p.outbox = append(p.outbox, kafka.Message{Topic: t.cfg.Topic, Key: []byte(userID), Value: v,
		Headers: routeHeaders([]kafka.Header{{Key: stream.HeaderInternal, Value: []byte(stream.InternalMerge)}}, route)})
	// Keep only what routing and de-duplication need.
	e.state = features.State{Seen: e.state.Seen, MergedInto: userID, MergedRoute: route}
	p.aliases[d.user] = userID
	t.stats.Merges.Add(1)
}

// applyMerge folds a handed-over anonymous profile into the user, once.
func (p *processor) applyMerge(d *decoded, e *entry, m *kafka.Message) {
	t := p.t
	if e.erased {
		t.stats.Erased.Add(1)
		return
	}
	if e.state.IsDuplicate(d.merge.MergeID) {
		t.stats.Duplicates.Add(1)
		return
	}
	var from features.State
	if err := from.UnmarshalBinary(d.merge.State); err != nil {
		p.deadLetter(m, &stream.DecodeError{Reason: stream.ReasonBadInternal, Field: "state", Msg: err.Error()})
		return
	}
	env := features.Env{Cfg: &t.cfg.Features, Watermark: p.wm.Current()}
	e.state.Merge(&from, env)
	e.state.Link(d.merge.From)
	e.state.Remember(d.merge.MergeID, d.merge.TS, env)
	p.markDirty(d.user, e, m.Offset)
	t.stats.Applied.Add(1)
}

// unflushed reports whether anything processed is not yet durable: applied
// events, dead letters, or skipped records that advance the checkpoint.
func (p *processor) unflushed() bool {
	return p.pending > 0 || len(p.outbox) > 0 || (p.next >= 0 && p.next != p.flushed)
}

// flush makes everything processed so far durable: emitted messages first
// (acknowledged by Kafka), then user states with the checkpoint in one
// Redis round trip.
func (p *processor) flush(ctx context.Context, feed *stream.Feed) (err error) {
	t := p.t
	if p.next < 0 || (p.next == p.flushed && p.pending == 0 && len(p.outbox) == 0 && len(p.dirtyList) == 0) {
		p.pending = 0
		return nil
	}
	ctx, span := p.obs.StartFlush(ctx) // linked to every event it makes durable
	var st features.FlushStats
	defer func() { p.obs.EndFlush(span, st.Users, st.Commands, st.Duration, err) }()
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
		users = append(users, features.UserWrite{User: u, State: b, Stamp: e.stamp, Revive: e.revive})
	}
	f := features.Flush{
		Topic:      p.part.Topic,
		Partition:  p.part.ID,
		Users:      users,
		Checkpoint: features.Checkpoint{Next: p.next, Watermark: p.wm.Current()},
		Aliases:    p.aliases,
	}
	written := time.Now() // before the write: its TTL runs from later
	st, err = t.store.Write(ctx, f)
	if err != nil {
		return err
	}
	t.stats.flushed(st, p.pending)
	for _, u := range p.dirtyList {
		e := p.cache[u]
		e.dirty, e.revive = false, false
		e.fresh = t.freshUntil(written)
	}
	for _, u := range st.Erased {
		// Erased while cached: forget the state.
		p.cache[u].forget()
	}
	if len(p.aliases) > 0 {
		p.aliases = map[string]string{}
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
