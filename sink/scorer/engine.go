package scorer

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// user is a cached user of a partition.
type user struct {
	id  string
	st  userState
	mem segment.Membership
	// o, q: the stamp of the stored state: the offset of the last record
	// of the partition applied to the user and the number of timer
	// evaluations since.
	o, q int64

	dirty       bool
	scoresDirty bool
	gone        bool      // retention ended or profiling withdrawn: delete the keys on flush
	reindex     bool      // re-assert index and timer entries on flush
	idx         []indexOp // index changes since the last flush
	flushedDue  int64     // due time in the timers set
	erased      bool
	lastUse     uint64

	// The explanation of the last snapshot's scores is computed lazily,
	// once per flush (or when a trigger needs it): ex is the encoded
	// snapshot, exSum its summary (for a model with derived inputs) and
	// exServed the model that scored it.
	ex       *nn.Example
	exSum    inputs.Summary
	exServed *registry.Served
}

// outMsg is a message waiting for the flush, with what stats need.
type outMsg struct {
	msg      kafka.Message
	change   string // "enter"/"exit" for a change, "" for a trigger
	name     string // segment or trigger kind
	appended time.Time
	// event is the time of the event behind the message, set by the
	// processor when the latency is observed (zero: none, or unknown)
	event time.Time
}

// output is the output label of m's latency and emit span.
func (m *outMsg) output() string {
	if m.change != "" {
		return OutputSegmentChange
	}
	return observability.OutputTrigger
}

// engine evaluates one partition's users: snapshots, timers, price drops.
// It does no I/O; the processor loads the users it needs beforehand and
// flushes what it produced. It belongs to one goroutine.
type engine struct {
	cfg      *Config
	stats    *counters
	sketches *segment.Sketches
	items    *itemTable
	net      netScorer
	cat      *segment.Catalogue
	clv      *registry.CLVParams
	out      []outMsg
	exPool   []*nn.Example         // encoded examples waiting to be reused
	aside    netScorer             // explains with a model no longer bound
	dirty    []*user               // users changed since the last flush
	lookup   func(id string) *user // a cached user, or nil

	vec features.Vector // scratch
}

func newEngine(cfg *Config, stats *counters, sk *segment.Sketches) *engine {
	e := &engine{cfg: cfg, stats: stats, sketches: sk, items: newItemTable(cfg.Items)}
	e.net.top = cfg.ExplainTop
	return e
}

// begin binds the catalogue and model in force for the next records.
func (e *engine) begin(cat *segment.Catalogue, served *registry.Served) {
	e.cat = cat
	e.net.bind(served)
	e.clv = nil
	if served != nil {
		e.clv = served.Version.CLV
	}
}

func (e *engine) markDirty(u *user) {
	if !u.dirty {
		u.dirty = true
		e.dirty = append(e.dirty, u)
	}
}

// learn updates the item statistics from a snapshot whose effects on its
// user are already stored (a replayed record). The item table learns from
// the snapshot alone (its recent items), as snapshot does, so relearning
// after a restart rebuilds the table the uninterrupted scorer has.
func (e *engine) learn(s *features.Snapshot) {
	if s.IsConsent() {
		// No item, and no observation of one; a profiling withdrawal
		// drops the user's watches as consent does.
		if s.ProfilingOff {
			e.items.forget(s.User)
		}
		return
	}
	ts := s.TS.UnixMilli()
	typ := stream.EventType(s.Type)
	e.items.observe(s.ItemID, s.Category, typ, s.Price, ts, s.Recent)
	switch {
	case typ == stream.TypeView && s.ItemID != "" && s.Price > 0:
		e.items.watch(s.ItemID, s.User, ts)
	case typ == stream.TypePurchase:
		e.items.unwatch(s.ItemID, s.User)
	}
}

// snapshot handles one snapshot of u at offset; clock is the partition
// clock (unix ms) before it. It is the one place a snapshot is handled: a
// consent snapshot goes to consent.
func (e *engine) snapshot(u *user, s *features.Snapshot, offset, clock int64) error {
	if s.IsConsent() {
		e.consent(u, s, offset, clock)
		return nil
	}
	ts := s.TS.UnixMilli()
	e.fireBefore(u, ts, clock)
	e.restart(u)
	e.vec = s.Vector()
	if ts < u.st.LastTS {
		// A late event: its snapshot was evaluated at its own time but
		// already counts the user's later events; bring it to the latest.
		e.vec = project(e.vec, ts, u.st.LastTS)
	}
	if u.ex == nil {
		u.ex = e.example()
	}
	net, err := e.net.predict(u.ex, &u.exSum, s)
	if err != nil {
		return err
	}
	u.exServed = e.net.served
	typ := stream.EventType(s.Type)
	// The items viewed before this event come with the snapshot (version
	// 2), so the item table is a function of the snapshots in offset
	// order; a version 1 snapshot falls back to the user's own list.
	recent := s.Recent
	if s.Version == features.SnapshotVersionNoRecent {
		recent = u.st.Recent
	}
	prev := e.items.observe(s.ItemID, s.Category, typ, s.Price, ts, recent)
	u.st.observe(s, &e.vec)
	u.st.Net, u.st.Model, u.st.Explain = net, e.net.version(), [numHeads][]contribution{}
	if typ == stream.TypeView && u.st.CartAt == 0 && net[headPurchase] >= e.cfg.Triggers.BrowseIntent {
		if u.st.BrowseAt == 0 {
			u.st.BrowseAt = ts
		}
		u.st.BrowseScore = max(u.st.BrowseScore, net[headPurchase])
		u.st.Browse = pushBounded(u.st.Browse, s.ItemID, maxBrowse)
	}
	if typ == stream.TypeView && s.ItemID != "" && s.Price > 0 && !u.st.bought(s.ItemID) {
		e.items.watch(s.ItemID, u.id, ts)
	}
	if typ == stream.TypePurchase {
		e.items.unwatch(s.ItemID, u.id)
	}
	var sc scores
	e.scores(u, &e.vec, &sc)
	for i, v := range sc {
		e.sketches.Add(scoreNames[i], v)
	}
	at := max(u.st.LastTS, u.st.EvalAt)
	e.segments(u, &e.vec, &sc, at, CauseEvent, s.ID, s.Source.Appended)
	u.st.EvalAt = at
	u.scoresDirty = true
	u.o, u.q = offset, 0
	e.schedule(u, &e.vec, &sc, at)
	e.markDirty(u)
	if prev > 0 && s.Price > 0 && s.Price < prev {
		e.priceDrop(u.id, s.ItemID, s.Price, ts, offset, clock, s.Source.Appended)
	}
	return nil
}

// fireBefore fires u's timers due at or before ts (unix ms), the time of
// u's next record, as if the record had not come yet: the user's timeline
// does not depend on batching.
func (e *engine) fireBefore(u *user, ts, clock int64) {
	for i := 0; i < 16 && u.st.Due > 0 && u.st.Due <= ts && u.st.LastTS > 0; i++ {
		e.fire(u, u.st.Due, clock)
	}
}

// restart makes a user forgotten earlier in this flush (retention, a
// profiling withdrawal) who has a new record a new user, as the flush
// would have left it: no state, no membership, and no pending explanation
// of the old profile. Its index changes since the flush (the exits) stay
// queued.
func (e *engine) restart(u *user) {
	if !u.gone {
		return
	}
	u.gone = false
	u.st.unmarshal(nil)
	u.mem = segment.Membership{}
	if u.ex != nil {
		e.exPool = append(e.exPool, u.ex)
		u.ex, u.exServed = nil, nil
	}
}

// consent handles a consent snapshot of u at offset (see
// features.Snapshot): it neither scores nor evaluates segments. A timer
// due before it fires first, as before any record. The user's ads consent
// becomes the snapshot's, so later triggers (most fire from timers, with
// no snapshot in between) are suppressed, or allowed again after a
// re-grant. A profiling withdrawal forgets the user as the end of
// retention does: it leaves every segment (cause consent), its timer is
// cleared, it watches no item (in the item table, which learn keeps a
// function of the snapshots), and its keys go at the flush.
func (e *engine) consent(u *user, s *features.Snapshot, offset, clock int64) {
	ts := s.TS.UnixMilli()
	e.stats.consent.Add(1)
	e.fireBefore(u, ts, clock)
	u.o, u.q = offset, 0
	e.markDirty(u)
	if s.ProfilingOff {
		e.leave(u, max(ts, u.st.EvalAt), "consent: profiling withdrawn", CauseConsent, s.ID, s.Source.Appended)
		e.items.forget(u.id)
		e.stats.withdrawn.Add(1)
		return
	}
	e.restart(u)
	u.st.AdsOff = s.AdsOff
}

// example returns an example buffer for a user's encoded snapshot.
func (e *engine) example() *nn.Example {
	if n := len(e.exPool); n > 0 {
		ex := e.exPool[n-1]
		e.exPool = e.exPool[:n-1]
		return ex
	}
	return &nn.Example{}
}

// explain computes the explanation of u's last network scores if it is
// pending, and releases the encoded snapshot.
func (e *engine) explain(u *user) error {
	if u.ex == nil {
		return nil
	}
	ex, served := u.ex, u.exServed
	u.ex, u.exServed = nil, nil
	defer func() { e.exPool = append(e.exPool, ex) }()
	if served == nil || e.cfg.ExplainTop <= 0 {
		return nil
	}
	n := &e.net
	if served != n.served {
		n = &e.aside
		n.top = e.cfg.ExplainTop
		n.bind(served)
	}
	start := time.Now()
	expl, err := n.explain(*ex, &u.exSum)
	if err != nil {
		return err
	}
	e.stats.explainNs.Add(int64(time.Since(start)))
	e.stats.explains.Add(1)
	u.st.Explain = expl
	return nil
}

// scores fills sc from u's network scores and the baselines on v.
func (e *engine) scores(u *user, v *features.Vector, sc *scores) {
	fillScores(u.st.Net, e.clv, v, sc)
}

// segments evaluates the catalogue for u at (unix ms) and emits the
// changes.
func (e *engine) segments(u *user, v *features.Vector, sc *scores, at int64, cause, snapID string, appended time.Time) {
	in := input{vec: v, tokens: &u.st.Tokens, sc: sc, deciles: e.sketches}
	next, changes := e.cat.Evaluate(&in, u.mem, time.UnixMilli(at).UTC())
	for _, ch := range changes {
		e.emitChange(u, ch.Segment, ch.Kind.String(), ch.At, reasonOf(ch.Reason), cause, snapID, appended)
	}
	u.mem = next
}

func (e *engine) emitChange(u *user, seg, change string, at time.Time, reason ChangeReason, cause, snapID string, appended time.Time) {
	m := SegmentChange{
		Version: ChangeVersion, EventID: ChangeID(u.id, seg, change, at), UserID: u.id, Segment: seg, Change: change,
		At: at, Reason: reason, ModelVersion: u.st.Model, Cause: cause, SnapshotID: snapID,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return // only finite numbers and strings: cannot happen
	}
	e.out = append(e.out, outMsg{msg: kafka.Message{Topic: e.cfg.ChangesTopic, Key: []byte(u.id), Value: b},
		change: change, name: seg, appended: appended})
	u.idx = append(u.idx, indexOp{user: u.id, seg: seg, add: change == segment.Enter.String()})
}

// fire evaluates u at its due time: time-relative segments, triggers whose
// time has come, retention. It is called when the partition clock passes
// due, or before the user's next event when that is later than due
// (whichever comes first), with the same result either way.
func (e *engine) fire(u *user, due, clock int64) {
	e.stats.timers.Add(1)
	at := max(due, u.st.EvalAt)
	v := project(u.st.Vec, u.st.LastTS, at)
	var sc scores
	e.scores(u, &v, &sc)
	u.q++
	e.markDirty(u)
	u.scoresDirty = true
	if u.st.LastTS > 0 && at >= u.st.LastTS+e.cfg.Retention.Milliseconds() {
		e.retire(u, at)
		return
	}
	e.segments(u, &v, &sc, at, CauseTimer, "", time.Time{})
	t := &e.cfg.Triggers
	if u.st.CartAt > 0 && at >= u.st.CartAt+t.CartAfter.Milliseconds() {
		if len(u.st.Cart) > 0 {
			since := time.UnixMilli(u.st.CartAt).UTC()
			e.trigger(u, KindCartAbandonment, at, clock, u.id+"|"+KindCartAbandonment+"|"+strconv.FormatInt(u.st.CartAt, 10),
				sPurchase, &sc, slices.Clone(u.st.Cart), TriggerContext{Items: slices.Clone(u.st.Cart), Since: &since}, CauseTimer, time.Time{})
		}
		u.st.CartAt, u.st.Cart = 0, u.st.Cart[:0]
	}
	if u.st.BrowseAt > 0 && at >= u.st.LastTS+t.BrowseIdle.Milliseconds() {
		since := time.UnixMilli(u.st.BrowseAt).UTC()
		e.trigger(u, KindBrowseAbandonment, at, clock, u.id+"|"+KindBrowseAbandonment+"|"+strconv.FormatInt(u.st.BrowseAt, 10),
			sPurchase, &sc, slices.Clone(u.st.Browse), TriggerContext{Items: slices.Clone(u.st.Browse), Since: &since}, CauseTimer, time.Time{})
		u.st.BrowseAt, u.st.BrowseScore, u.st.Browse = 0, 0, u.st.Browse[:0]
	}
	if seen := u.st.lastSeenMs(); e.valuable(u) && u.st.WinBackFor != seen && at >= seen+t.WinBackIdle.Milliseconds() {
		u.st.WinBackFor = seen
		churn, slot := sc[sChurn], sChurn
		if math.IsNaN(churn) && !math.IsNaN(sc[sPAlive]) {
			churn, slot = 1-sc[sPAlive], sPAlive
		}
		if churn >= t.WinBackChurn {
			since := time.UnixMilli(seen).UTC()
			e.trigger(u, KindWinBack, at, clock, u.id+"|"+KindWinBack+"|"+strconv.FormatInt(seen, 10),
				slot, &sc, nil, TriggerContext{Since: &since}, CauseTimer, time.Time{})
		}
	}
	u.st.EvalAt = at
	e.schedule(u, &v, &sc, at)
}

// valuable reports whether u is a previously valuable customer.
func (e *engine) valuable(u *user) bool {
	return u.st.Vec[features.PurchasesTotal] >= e.cfg.Triggers.WinBackMinPurchases &&
		u.st.Vec[features.RevenueTotal] >= e.cfg.Triggers.WinBackMinRevenue
}

// retire ends a user whose retention passed: it leaves every segment and
// its scorer keys are deleted at the flush.
func (e *engine) retire(u *user, at int64) {
	e.leave(u, at, "retention: no activity for "+e.cfg.Retention.String(), CauseRetention, "", time.Time{})
	e.stats.retired.Add(1)
}

// leave forgets u at (unix ms): it exits every segment with note and
// cause (snapID and appended name the record behind it, if any), its
// timer is cleared, its watched items are unwatched, and its scorer keys
// are deleted at the flush.
func (e *engine) leave(u *user, at int64, note, cause, snapID string, appended time.Time) {
	when := time.UnixMilli(at).UTC()
	for name := range u.mem.All() {
		e.emitChange(u, name, segment.Exit.String(), when, ChangeReason{Values: map[string]any{}, Note: note},
			cause, snapID, appended)
	}
	u.mem = segment.Membership{}
	u.gone = true
	u.st.Due = 0
	for _, it := range u.st.Viewed {
		e.items.unwatch(it.Item, u.id)
	}
}

// schedule sets u's next timer: the earliest of the next time-relative
// segment change, the open cart and browse occasions, win-back and
// retention, strictly after now.
func (e *engine) schedule(u *user, v *features.Vector, sc *scores, now int64) {
	if u.gone {
		u.st.Due = 0
		return
	}
	best := int64(math.MaxInt64)
	consider := func(t int64) {
		if t > now && t < best {
			best = t
		}
	}
	in := input{vec: v, tokens: &u.st.Tokens, sc: sc, deciles: e.sketches}
	if t, ok := e.cat.NextCheck(&in, u.mem, time.UnixMilli(now).UTC()); ok {
		consider(t.UnixMilli())
	}
	tc := &e.cfg.Triggers
	if u.st.CartAt > 0 {
		consider(u.st.CartAt + tc.CartAfter.Milliseconds())
	}
	if u.st.BrowseAt > 0 {
		consider(u.st.LastTS + tc.BrowseIdle.Milliseconds())
	}
	if seen := u.st.lastSeenMs(); e.valuable(u) && u.st.WinBackFor != seen {
		consider(seen + tc.WinBackIdle.Milliseconds())
	}
	if u.st.LastTS > 0 {
		consider(u.st.LastTS + e.cfg.Retention.Milliseconds())
	}
	if best == math.MaxInt64 {
		best = 0
	}
	u.st.Due = best
}

// trigger emits a trigger of kind for u at (unix ms) unless consent, the
// quiet period, its expiry (the partition clock is past it) or the daily
// cap suppresses it. slot names the score that motivated it; first are the
// items it is about (recommended first).
func (e *engine) trigger(u *user, kind string, at, clock int64, dedupe string, slot int, sc *scores,
	first []string, ctx TriggerContext, cause string, appended time.Time) {
	t := &e.cfg.Triggers
	ki := uint8(slices.Index(Kinds(), kind))
	day := utcDay(at)
	expiry := t.Expiry[kind]
	lp := u.st.lastPurchaseMs()
	reason := ""
	switch {
	case u.st.AdsOff:
		reason = SuppressConsent
	case lp > 0 && at >= lp && at-lp < t.Quiet.Milliseconds():
		reason = SuppressQuiet
	case clock > at+expiry.Milliseconds():
		reason = SuppressExpired
	case u.st.countCap(ki, day) >= int64(t.MaxPerDay):
		reason = SuppressCap
	}
	if reason != "" {
		e.stats.suppress(reason, kind)
		return
	}
	u.st.addCap(ki, day)
	if err := e.explain(u); err != nil {
		e.cfg.Logger.Warn("scorer: explaining a trigger's score failed", "err", err)
	}
	when := time.UnixMilli(at).UTC()
	recs, cats := e.items.recommend(&u.st, first, t.Recommend, at)
	if recs == nil {
		recs = []Recommendation{}
	}
	if cats == nil {
		cats = []string{}
	}
	var expl []Contribution
	switch slot {
	case sPurchase:
		expl = publicExplanation(u.st.Explain[headPurchase], false)
	case sRepeat:
		expl = publicExplanation(u.st.Explain[headRepeat], false)
	case sChurn:
		expl = publicExplanation(u.st.Explain[headRepeat], true)
	}
	if expl == nil {
		expl = []Contribution{}
	}
	m := Trigger{
		Version: TriggerVersion, TriggerID: TriggerID(dedupe, when), UserID: u.id, Kind: kind, Priority: priority(kind),
		At: when, ExpiresAt: when.Add(expiry), DedupeKey: dedupe, Channels: slices.Clone(t.Channels[kind]),
		ModelVersion: u.st.Model, Score: TriggerScore{Name: scoreNames[slot], Value: ptr(sc[slot])},
		Items: recs, Categories: cats, Explanation: expl, Context: ctx, Cause: cause,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	e.out = append(e.out, outMsg{msg: kafka.Message{Topic: e.cfg.RetargetTopic, Key: []byte(u.id), Value: b},
		name: kind, appended: appended})
}

func priority(kind string) string {
	switch kind {
	case KindCartAbandonment:
		return "high"
	case KindWinBack:
		return "low"
	}
	return "normal"
}

// priceDrop tells the users watching item (other than actor) that its
// price fell to price, at offset (the record of the event that showed it,
// appended to the clickstream at appended).
func (e *engine) priceDrop(actor, item string, price float64, at, offset, clock int64, appended time.Time) {
	ws := slices.Clone(e.items.watchers(item))
	for _, w := range ws {
		if w.User == actor {
			continue
		}
		u := e.lookup(w.User)
		if u == nil || u.erased || u.o >= offset {
			continue // not loaded (see processor), erased, or done before a restart
		}
		e.stats.priceChecks.Add(1)
		i := slices.IndexFunc(u.st.Viewed, func(x viewedItem) bool { return x.Item == item })
		if i < 0 || u.st.bought(item) {
			e.items.unwatch(item, u.id)
			continue
		}
		seen := u.st.Viewed[i]
		if price > seen.Price*(1-e.cfg.Triggers.PriceDrop) {
			continue
		}
		u.st.Viewed = slices.Delete(u.st.Viewed, i, i+1)
		e.items.unwatch(item, u.id)
		var sc scores
		v := project(u.st.Vec, u.st.LastTS, max(at, u.st.LastTS))
		e.scores(u, &v, &sc)
		dedupe := u.id + "|" + KindPriceDrop + "|" + item + "|" + strconv.FormatInt(int64(math.Round(price*1e6)), 10)
		when := max(at, u.st.EvalAt)
		e.trigger(u, KindPriceDrop, when, clock, dedupe, sPurchase, &sc, []string{item},
			TriggerContext{Items: []string{item}, OldPrice: seen.Price, NewPrice: price}, CausePrice, appended)
		u.o, u.q = offset, 0
		e.markDirty(u)
	}
}
