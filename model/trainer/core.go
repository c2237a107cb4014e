package trainer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/metrics"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/stream"
)

// Trained describes one learnt example, as passed to Config.OnTrain.
type Trained struct {
	// ID is the snapshot id; Task the head name.
	ID   string
	Task string
	// Label is 1 (the label event arrived) or 0 (the horizon passed).
	Label float64
	// Partition and Offset locate the snapshot.
	Partition int
	Offset    int64
	// TS is the snapshot's event time.
	TS time.Time
	// MaturedAt is the offset, in the same partition, of the message whose
	// processing made the label known (the label event, or the event that
	// moved the watermark past the horizon).
	MaturedAt int64
	// Position is the partition's next offset to consume when the batch
	// was trained: every message below it had been processed.
	Position int64
}

// partState is one input partition's position, event time and pending
// deadlines.
type partState struct {
	id     int
	next   int64 // next offset to consume (-1: unknown)
	resume int64 // where a new reader starts (-1: unknown)
	maxTS  int64 // largest event time seen, unix ms
	hasTS  bool
	dl     deadlineHeap
	// Replay after a restore: offsets below replayUntil were consumed by
	// an earlier incarnation; of them, only replaySet's (offset → task
	// mask) become examples again.
	replayUntil int64
	replaySet   map[int64]uint8
	feed        *stream.Feed
}

func (ps *partState) watermark(lateness time.Duration) (int64, bool) {
	return ps.maxTS - lateness.Milliseconds(), ps.hasTS
}

// ready is a matured (pending, task) waiting for the next micro-batch.
type ready struct {
	p      *pending
	task   int
	label  float64
	by     int64
	labels []float64
}

// gateEval collects a challenger's paired scores.
type gateEval struct {
	version int64
	model   *nn.Model
	enc     *inputs.Encoder // bound to the version's fit
	ch      [numTasks][]float64
	champ   [numTasks][]float64
	labels  [numTasks][]bool
}

// liveMon watches the champion's live scores for rollback.
type liveMon struct {
	version int64
	win     [numTasks]*metrics.Prequential
	since   [numTasks]int
	ref     [numTasks]float64
}

// counters are the trainer's monotonic counts (persisted).
type counters struct {
	Snapshots   int64           `json:"snapshots"`
	Bad         int64           `json:"bad"`
	Duplicates  int64           `json:"duplicates"`
	OutOfOrder  int64           `json:"out_of_order"`
	Examples    [numTasks]int64 `json:"examples"`
	Matured     [numTasks]int64 `json:"matured"`
	Positives   [numTasks]int64 `json:"positives"`
	Trained     [numTasks]int64 `json:"trained"`
	Dropped     int64           `json:"dropped"`
	Evaluated   [numTasks]int64 `json:"evaluated"`
	EvalSkipped int64           `json:"eval_skipped"`
	Batches     int64           `json:"batches"`
	Versions    int64           `json:"versions"`
	Promotions  int64           `json:"promotions"`
	Rejections  int64           `json:"rejections"`
	Rollbacks   int64           `json:"rollbacks"`
	TrainErrors int64           `json:"train_errors"`
	// ErasedDropped counts snapshots of erased users dropped on arrival.
	ErasedDropped int64 `json:"erased_dropped"`
	// Consent counts consent snapshots: neither examples nor labels.
	Consent int64 `json:"consent"`
}

// core is the trainer's state machine. It is driven by process and tick
// and guarded by Trainer.mu.
type core struct {
	cfg   Config
	reg   *registry.Registry
	base  *inputs.Encoder // the architecture's encoder without a fit
	enc   *inputs.Encoder // base bound to the BG/NBD fit in force (bg.params)
	heads [numTasks]int   // head index of each task, -1 when absent
	hash  string

	net          *nn.Network
	latest       *nn.Model       // network slot: the last checkpoint (or the start)
	latestEnc    *inputs.Encoder // the encoder latest's version was cut with
	lastVersion  int64
	parent       int64 // version the network's weights come from (0: scratch)
	lineageCount int64 // examples learnt by the weights' lineage
	watcher      *registry.Watcher
	champion     *registry.Served
	lastPoll     time.Time

	parts   map[int]*partState
	users   map[string][]*pending
	queue   fifo
	open    int // open (pending, task) pairs
	seq     uint64
	dd      *dedupe
	ready   []ready
	readyAt time.Time
	maxTS   int64

	logit [numTasks]*logistic
	bg    *bgnbd

	evalQ     [numTasks]evalQueue
	preq      [numTasks][numModels]*metrics.Prequential
	gate      *gateEval
	waiting   []int64 // candidates cut while a challenger is under evaluation
	mon       *liveMon
	curve     []CurvePoint
	curveNext int64

	// erased maps users erased (or de-consented) to when, unix ms of the
	// wall clock: snapshots they had in flight are dropped on arrival.
	erased map[string]int64

	c              counters
	batchesSinceCP int
	trainedSinceCP int
	lastCP         time.Time
	audit          []string
	started        time.Time
	trainedAtStart int64 // examples learnt by earlier incarnations (restored counters)
	rng            *rand.Rand
	lastErr        error
}

func newCore(cfg Config, reg *registry.Registry) (*core, error) {
	enc, err := inputs.New(cfg.Arch)
	if err != nil {
		return nil, err
	}
	c := &core{cfg: cfg, reg: reg, base: enc, enc: enc, latestEnc: enc, hash: enc.SchemaHash(), parts: map[int]*partState{},
		users: map[string][]*pending{}, dd: newDedupe(cfg.DedupeSize), bg: newBGNBD(cfg.BGNBD, cfg.RepeatHorizon),
		rng: rand.New(rand.NewPCG(cfg.Arch.Seed, 7)), started: cfg.Now(), lastCP: cfg.Now()}
	for t, h := range [numTasks]string{inputs.HeadPurchase, inputs.HeadRepeat} {
		c.heads[t] = headIndex(cfg.Arch, h)
		c.logit[t] = newLogistic(len(cfg.Arch.NumericFeatures), cfg.Logistic)
		for m := range numModels {
			c.preq[t][m], _ = metrics.NewPrequential(cfg.Window)
		}
	}
	c.curveNext = int64(cfg.CurveEvery)
	if reg != nil {
		c.watcher, _ = registry.NewWatcher(registry.WatcherConfig{Registry: reg, Logger: cfg.Logger})
	}
	return c, nil
}

// curveTask is the task the learning curve follows.
func (c *core) curveTask() int {
	if c.heads[taskPurchase] >= 0 {
		return taskPurchase
	}
	return taskRepeat
}

func (c *core) part(id int) *partState {
	ps := c.parts[id]
	if ps == nil {
		ps = &partState{id: id, next: -1, resume: -1}
		c.parts[id] = ps
	}
	return ps
}

// process handles one message of partition part at offset.
func (c *core) process(ctx context.Context, part int, offset int64, value []byte) {
	ps := c.part(part)
	if ps.next >= 0 && offset < ps.next {
		return // already consumed (a re-read after a processor restart)
	}
	snap, err := features.DecodeSnapshot(value)
	if err != nil {
		c.c.Bad++
		c.advance(ps, offset)
		return
	}
	c.processSnapshot(ctx, ps, offset, &snap)
}

func (c *core) advance(ps *partState, offset int64) {
	ps.next, ps.resume = offset+1, offset+1
	if ps.replaySet != nil {
		delete(ps.replaySet, offset)
		if ps.next >= ps.replayUntil {
			ps.replaySet = nil
		}
	}
}

func (c *core) processSnapshot(ctx context.Context, ps *partState, offset int64, s *features.Snapshot) {
	replaying := offset < ps.replayUntil
	var replayMask uint8
	if replaying {
		replayMask = ps.replaySet[offset]
	} else if c.dd.seen(s.ID) {
		c.c.Duplicates++
		c.advance(ps, offset)
		return
	}
	if at, ok := c.erased[s.User]; ok {
		made := s.Source.Appended
		if made.IsZero() {
			made = s.TS
		}
		if made.UnixMilli() <= at {
			// Produced before the user was erased: never learnt from.
			c.c.ErasedDropped++
			c.advance(ps, offset)
			return
		}
	}
	if s.IsConsent() {
		c.consent(ps, offset, s, replaying)
		return
	}
	if !replaying {
		c.c.Snapshots++
	}
	ts := s.TS.UnixMilli()
	if !ps.hasTS || ts > ps.maxTS {
		ps.maxTS, ps.hasTS = ts, true
	}
	c.maxTS = max(c.maxTS, ts)
	if s.Type == string(stream.TypePurchase) {
		c.resolve(s.User, ts, offset)
	}
	if !replaying || replayMask != 0 {
		c.create(ps, offset, s, replaying, replayMask)
	}
	c.bg.observe(s)
	c.expire(ps, offset)
	c.advance(ps, offset)
}

// consent handles a consent snapshot (see features.Snapshot). It carries
// no profile, so it is no example, and it is no label; nor does its event
// time move the watermark (a stream's examples and labels do not depend
// on its consent events). A profiling withdrawal drops what the trainer
// holds of the user (drop): the ingester applies none of the user's
// events from then on, so the pending examples would mature as negatives
// whatever the user does, and their features are what the user withdrew.
func (c *core) consent(ps *partState, offset int64, s *features.Snapshot, replaying bool) {
	if !replaying {
		c.c.Consent++
	}
	if s.ProfilingOff {
		c.drop(s.User)
	}
	c.advance(ps, offset)
}

// resolve labels the user's pending examples that a purchase at ts
// (unix ms) makes positive.
func (c *core) resolve(user string, ts, offset int64) {
	list := c.users[user]
	if len(list) == 0 {
		return
	}
	day := floorDiv(ts, 86400000)
	keep := list[:0]
	for _, p := range list {
		if p.open&(1<<taskPurchase) != 0 && p.ts < ts && ts <= p.deadline[taskPurchase] {
			c.mature(p, taskPurchase, 1, offset)
		}
		if p.open&(1<<taskRepeat) != 0 && day > p.day && ts <= p.deadline[taskRepeat] {
			c.mature(p, taskRepeat, 1, offset)
		}
		if p.open != 0 {
			keep = append(keep, p)
		}
	}
	clear(list[len(keep):])
	if len(keep) == 0 {
		delete(c.users, user)
	} else {
		c.users[user] = keep
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// create makes the snapshot's examples, scores them with every model and
// stores them as pending.
func (c *core) create(ps *partState, offset int64, s *features.Snapshot, replaying bool, replayMask uint8) {
	// A snapshot whose profile already contains a later event (it was
	// made from a late event) would leak that event into its features.
	if lastSeen, ok := s.Features["last_seen"]; ok && lastSeen > float64(floorDiv(s.TS.UnixMilli(), 1000)) {
		c.c.OutOfOrder++
		return
	}
	ts := s.TS.UnixMilli()
	day := floorDiv(ts, 86400000)
	var mask uint8
	if c.heads[taskPurchase] >= 0 {
		mask |= 1 << taskPurchase
	}
	if c.heads[taskRepeat] >= 0 && s.Features["purchase_days"] >= 1 &&
		(c.cfg.RepeatExamples == RepeatAtAll || s.Type == string(stream.TypePurchase)) {
		dup := false
		for _, p := range c.users[s.User] {
			if p.open&(1<<taskRepeat) != 0 && p.day == day {
				dup = true
				break
			}
		}
		if !dup {
			mask |= 1 << taskRepeat
		}
	}
	if replaying {
		mask &= replayMask
	}
	if mask == 0 {
		return
	}
	c.seq++
	p := &pending{id: s.ID, user: s.User, part: ps.id, offset: offset, ts: ts, day: day, ex: c.enc.Encode(s), open: mask, seq: c.seq,
		label: [numTasks]int8{labelUnknown, labelUnknown}}
	c.score(p, s)
	horizon := [numTasks]time.Duration{c.cfg.PurchaseHorizon, c.cfg.RepeatHorizon}
	for t := range numTasks {
		if mask&(1<<t) == 0 {
			continue
		}
		p.deadline[t] = ts + horizon[t].Milliseconds()
		ps.dl.push(deadlineItem{deadline: p.deadline[t], p: p, task: t})
		c.open++
		c.evalQ[t].push(p)
		for c.evalQ[t].len() > c.cfg.MaxPending {
			if f := c.evalQ[t].front(); f.label[t] != labelUnknown && f.label[t] != labelDropped {
				c.emit(f, t)
			} else {
				c.c.EvalSkipped++
			}
			c.evalQ[t].pop()
		}
		if !replaying {
			c.c.Examples[t]++
		}
	}
	c.users[s.User] = append(c.users[s.User], p)
	c.queue.push(p)
	for c.open > c.cfg.MaxPending {
		old := c.queue.oldestOpen()
		if old == nil {
			break
		}
		for t := range numTasks {
			if old.open&(1<<t) != 0 {
				old.open &^= 1 << t
				old.label[t] = labelDropped
				c.open--
				c.c.Dropped++
				c.drainEval(t)
			}
		}
	}
}

// score fills p.scores at arrival: every model scores before the label
// can be known.
func (c *core) score(p *pending, s *features.Snapshot) {
	for t := range numTasks {
		for m := range numModels {
			p.scores[t][m] = math.NaN()
		}
	}
	var buf [16]float64
	predict := func(m *nn.Model, ex nn.Example, slot int) {
		if m == nil {
			return
		}
		if len(ex.Numeric) == 0 && len(m.Arch().NumericFeatures) > 0 {
			return
		}
		out := buf[:len(m.Arch().Heads)]
		if _, err := m.PredictInto(out, ex); err != nil {
			return
		}
		for t := range numTasks {
			if h := c.heads[t]; h >= 0 && h < len(out) {
				p.scores[t][slot] = out[h]
			}
		}
	}
	// A version is scored with the inputs it was cut with: its own BG/NBD
	// fit for the derived inputs, which may be older than c.enc's.
	exFor := func(enc *inputs.Encoder) nn.Example {
		if enc == nil || enc.SameInputs(c.enc) {
			return p.ex
		}
		if enc.SchemaHash() != c.hash {
			return nn.Example{}
		}
		return enc.Encode(s)
	}
	predict(c.latest, p.ex, mNetwork)
	if c.gate != nil {
		predict(c.gate.model, exFor(c.gate.enc), mChallenger)
		p.chal = c.gate.version
	}
	if ch := c.champion; ch != nil {
		p.champ = ch.Version.Number
		if ch.Encoder.SchemaHash() == c.hash {
			predict(ch.Model, exFor(ch.Encoder), mChampion)
		} else if sc, err := ch.Score(s); err == nil {
			heads := ch.Encoder.Arch().Heads
			for t, name := range [numTasks]string{inputs.HeadPurchase, inputs.HeadRepeat} {
				for i, h := range heads {
					if h == name {
						p.scores[t][mChampion] = sc.Probs[i]
					}
				}
			}
		}
	}
	for t := range numTasks {
		p.scores[t][mRecency] = recencyScore(t, s.Features)
		p.scores[t][mLogistic] = c.logit[t].score(p.ex.Numeric)
	}
	p.scores[taskRepeat][mBGNBD] = c.bg.score(s)
}

// expire matures as negative every pending task of the partition whose
// horizon the watermark has passed.
func (c *core) expire(ps *partState, offset int64) {
	wm, ok := ps.watermark(c.cfg.AllowedLateness)
	if !ok {
		return
	}
	c.expireBefore(ps, wm, offset)
}

// expireBefore matures as negative every open example of ps whose
// horizon ends before t (unix ms), known by offset by; it returns how
// many matured.
func (c *core) expireBefore(ps *partState, t, by int64) int {
	n := 0
	for len(ps.dl) > 0 && ps.dl[0].deadline < t {
		it := ps.dl.pop()
		if it.p.open&(1<<it.task) != 0 {
			c.mature(it.p, it.task, 0, by)
			n++
		}
	}
	return n
}

// advanceTime lets event time run d past every partition's newest event,
// as if d passed with no event: each example whose horizon ends by then
// matures (negative, unless its label event came; no event will come, so
// a horizon ending exactly then is over too). It returns how many labels
// matured.
func (c *core) advanceTime(d time.Duration) int {
	n := 0
	for _, id := range c.sortedParts() {
		if ps := c.parts[id]; ps.hasTS {
			n += c.expireBefore(ps, ps.maxTS+d.Milliseconds()+1, max(ps.next-1, 0))
		}
	}
	return n
}

// mature records a known label: prequential evaluation of the arrival
// scores, the baselines' online updates, and the micro-batch queue.
func (c *core) mature(p *pending, task int, label float64, by int64) {
	p.open &^= 1 << task
	c.open--
	c.c.Matured[task]++
	pos := label == 1
	if pos {
		c.c.Positives[task]++
	}
	if pos {
		p.label[task] = 1
	} else {
		p.label[task] = 0
	}
	c.drainEval(task)
	c.logit[task].learn(p.ex.Numeric, label)
	if len(c.ready) == 0 {
		c.readyAt = c.cfg.Now()
	}
	c.ready = append(c.ready, ready{p: p, task: task, label: label, by: by})
}

// drainEval evaluates, in arrival order, the task's examples whose labels
// are known, up to the oldest one still pending.
func (c *core) drainEval(task int) {
	q := &c.evalQ[task]
	for p := q.front(); p != nil && p.label[task] != labelUnknown; p = q.front() {
		if p.label[task] != labelDropped {
			c.emit(p, task)
		}
		q.pop()
	}
}

// emit adds one labelled example's arrival scores to the prequential
// windows, the challenger's gate window and the champion's live window.
func (c *core) emit(p *pending, task int) {
	pos := p.label[task] == 1
	c.c.Evaluated[task]++
	for m := range numModels {
		s := p.scores[task][m]
		if math.IsNaN(s) {
			continue
		}
		c.preq[task][m].Add(s, pos)
	}
	if g := c.gate; g != nil && p.chal == g.version && len(g.labels[task]) < c.cfg.Gate.Examples {
		g.ch[task] = append(g.ch[task], p.scores[task][mChallenger])
		g.champ[task] = append(g.champ[task], p.scores[task][mChampion])
		g.labels[task] = append(g.labels[task], pos)
	}
	if mon := c.mon; mon != nil && p.champ == mon.version && !math.IsNaN(p.scores[task][mChampion]) {
		mon.win[task].Add(p.scores[task][mChampion], pos)
		mon.since[task]++
	}
	if task == c.curveTask() && c.c.Evaluated[task] >= c.curveNext {
		c.curveNext += int64(c.cfg.CurveEvery)
		c.addCurvePoint()
	}
}

// train learns from the matured examples queued (all of them when all is
// set, else whole micro-batches only).
func (c *core) train(all bool) {
	for len(c.ready) >= c.cfg.BatchSize || all && len(c.ready) > 0 {
		n := min(len(c.ready), c.cfg.BatchSize)
		batch := c.ready[:n]
		exs := make([]nn.Example, n)
		H := len(c.cfg.Arch.Heads)
		for i, r := range batch {
			ex := r.p.ex
			ex.Labels = make([]float64, H)
			ex.Mask = make([]bool, H)
			ex.Labels[c.heads[r.task]] = r.label
			ex.Mask[c.heads[r.task]] = true
			exs[i] = ex
		}
		if c.cfg.corrupt {
			c.rng.Shuffle(n, func(i, j int) {
				hi, hj := c.heads[batch[i].task], c.heads[batch[j].task]
				exs[i].Labels[hi], exs[j].Labels[hj] = exs[j].Labels[hj], exs[i].Labels[hi]
				exs[i].Mask[hi], exs[j].Mask[hj] = exs[j].Mask[hj], exs[i].Mask[hi]
			})
		}
		if _, err := c.net.TrainBatch(exs); err != nil {
			c.c.TrainErrors++
			c.lastErr = err
			c.cfg.Logger.Warn("training batch failed; its examples are skipped", "examples", n, "err", err)
		}
		if c.cfg.OnTrain != nil || c.cfg.AuditTrained {
			tr := make([]Trained, n)
			for i, r := range batch {
				tr[i] = Trained{ID: r.p.id, Task: c.cfg.Arch.Heads[c.heads[r.task]], Label: r.label, Partition: r.p.part,
					Offset: r.p.offset, TS: time.UnixMilli(r.p.ts).UTC(), MaturedAt: r.by, Position: c.parts[r.p.part].next}
				if c.cfg.AuditTrained {
					c.audit = append(c.audit, r.p.id+"/"+tr[i].Task)
				}
			}
			if c.cfg.OnTrain != nil {
				c.cfg.OnTrain(tr)
			}
		}
		for _, r := range batch {
			c.c.Trained[r.task]++
		}
		c.lineageCount += int64(n)
		clear(c.ready[:n])
		c.ready = c.ready[n:]
		c.c.Batches++
		c.batchesSinceCP++
		c.trainedSinceCP += n
		c.readyAt = c.cfg.Now()
	}
	if len(c.ready) == 0 {
		c.ready = nil
	}
}

// tick runs the time- and count-driven work: micro-batches, checkpoints,
// gate decisions, rollback checks, champion polling and BG/NBD refits.
func (c *core) tick(ctx context.Context) error {
	now := c.cfg.Now()
	if len(c.ready) >= c.cfg.BatchSize || len(c.ready) > 0 && now.Sub(c.readyAt) >= c.cfg.BatchInterval {
		c.train(false)
		if len(c.ready) > 0 && now.Sub(c.readyAt) >= c.cfg.BatchInterval {
			c.train(true)
		}
	}
	if c.bg.due(now) {
		c.bg.fit(time.UnixMilli(c.maxTS), now)
		c.enc = c.base.WithFit(c.bg.params.Fit())
	}
	if c.reg == nil {
		return nil
	}
	if now.Sub(c.lastPoll) >= c.cfg.ChampionPoll {
		if err := c.pollChampion(ctx); err != nil {
			return err
		}
	}
	if c.batchesSinceCP >= c.cfg.CheckpointBatches || c.trainedSinceCP > 0 && now.Sub(c.lastCP) >= c.cfg.CheckpointInterval {
		if err := c.checkpoint(ctx); err != nil {
			return err
		}
	}
	if !c.cfg.Gate.Disabled {
		if err := c.decideGate(ctx); err != nil {
			return err
		}
		if err := c.checkRollback(ctx); err != nil {
			return err
		}
	}
	return nil
}

// pollChampion follows the registry's champion.
func (c *core) pollChampion(ctx context.Context) error {
	c.lastPoll = c.cfg.Now()
	err := c.watcher.Refresh(ctx)
	if err != nil && !errors.Is(err, registry.ErrNoChampion) {
		if errors.Is(err, registry.ErrSchema) || errors.Is(err, registry.ErrCorrupt) {
			c.cfg.Logger.Warn("champion not loadable; keeping the previous one", "err", err)
			return nil
		}
		return err
	}
	s := c.watcher.Champion().Load()
	if s == nil || c.champion != nil && s.Version.Number == c.champion.Version.Number {
		return nil
	}
	prev := c.champion
	c.champion = s
	if prev != nil && c.mon != nil && c.mon.version == prev.Version.Number {
		c.recordLive(ctx, prev.Version.Number)
	}
	return c.startMonitor(ctx, s.Version.Number)
}

// recordLive stores the champion's live window metrics in its version.
func (c *core) recordLive(ctx context.Context, n int64) {
	live := map[string]registry.Metrics{}
	for t := range numTasks {
		if c.heads[t] < 0 || c.mon.win[t].Len() < c.cfg.Gate.MinExamples {
			continue
		}
		live[c.cfg.Arch.Heads[c.heads[t]]] = report(c.mon.win[t])
	}
	if len(live) == 0 {
		return
	}
	_, err := c.reg.Amend(ctx, n, func(v *registry.Version) error {
		if v.Metrics == nil {
			v.Metrics = map[string]map[string]registry.Metrics{}
		}
		for task, m := range live {
			if v.Metrics[task] == nil {
				v.Metrics[task] = map[string]registry.Metrics{}
			}
			v.Metrics[task]["live"] = m
		}
		return nil
	})
	if err != nil {
		c.cfg.Logger.Warn("recording live metrics failed", "version", n, "err", err)
	}
}

func report(p *metrics.Prequential) registry.Metrics {
	s, l := p.Pairs()
	return metricsOf(s, l)
}

func metricsOf(s []float64, l []bool) registry.Metrics {
	var pos int64
	for _, y := range l {
		if y {
			pos++
		}
	}
	return registry.Metrics{AUC: registry.Float(metrics.AUC(s, l)), LogLoss: registry.Float(metrics.LogLoss(s, l)),
		ECE: registry.Float(metrics.ECE(s, l, 10)), Examples: int64(len(s)), Positives: pos}
}

// startMonitor begins watching champion n's live metrics, with the
// previous good version's recorded AUC as the reference.
func (c *core) startMonitor(ctx context.Context, n int64) error {
	mon := &liveMon{version: n}
	for t := range numTasks {
		mon.win[t], _ = metrics.NewPrequential(c.cfg.Gate.Examples)
		mon.ref[t] = math.NaN()
	}
	meta, err := c.reg.Meta(ctx)
	if err != nil {
		return err
	}
	vs, err := c.reg.List(ctx)
	if err != nil {
		return err
	}
	if prev, err := registry.PreviousGood(meta, vs); err == nil {
		for t := range numTasks {
			if c.heads[t] < 0 {
				continue
			}
			m := prev.Metrics[c.cfg.Arch.Heads[c.heads[t]]]
			for _, key := range []string{"live", ModelChallenger} {
				if r, ok := m[key]; ok && r.Examples >= int64(c.cfg.Gate.MinExamples) && !math.IsNaN(float64(r.AUC)) {
					mon.ref[t] = float64(r.AUC)
					break
				}
			}
		}
	}
	c.mon = mon
	return nil
}

// checkRollback rolls the champion back when its AUC over a full window
// is below the previous good version's by more than the margin.
func (c *core) checkRollback(ctx context.Context) error {
	mon := c.mon
	if mon == nil {
		return nil
	}
	W := c.cfg.Gate.Examples
	for t := range numTasks {
		if math.IsNaN(mon.ref[t]) || mon.win[t].Len() < W || mon.since[t] < W/4 {
			continue
		}
		mon.since[t] = 0
		auc := mon.win[t].AUC()
		if math.IsNaN(auc) || auc >= mon.ref[t]-c.cfg.Gate.AUCMargin {
			continue
		}
		task := c.cfg.Arch.Heads[c.heads[t]]
		reason := fmt.Sprintf("live %s AUC %.4f over %d examples is below the previous good version's %.4f by more than %.3f",
			task, auc, W, mon.ref[t], c.cfg.Gate.AUCMargin)
		c.recordLive(ctx, mon.version)
		v, err := c.reg.RollbackFrom(ctx, mon.version, reason)
		if errors.Is(err, registry.ErrTransition) || errors.Is(err, registry.ErrNoPrevious) {
			c.cfg.Logger.Warn("rollback not possible", "version", mon.version, "err", err)
			c.mon = nil
			return nil
		}
		if err != nil {
			return err
		}
		c.c.Rollbacks++
		c.cfg.Logger.Warn("champion rolled back", "from", mon.version, "to", v.Number, "reason", reason)
		c.lastPoll = time.Time{}
		return c.pollChampion(ctx)
	}
	return nil
}

// decideGate promotes or rejects the challenger once it has a full window.
func (c *core) decideGate(ctx context.Context) error {
	g := c.gate
	if g == nil {
		return nil
	}
	full := false
	for t := range numTasks {
		if len(g.labels[t]) >= c.cfg.Gate.Examples {
			full = true
		}
	}
	if !full {
		return nil
	}
	considered, pass := 0, true
	var reasons []string
	vm := map[string]map[string]registry.Metrics{}
	for t := range numTasks {
		if c.heads[t] < 0 {
			continue
		}
		task := c.cfg.Arch.Heads[c.heads[t]]
		var chs, chp []float64
		var ls []bool
		noChamp := 0
		for i, y := range g.labels[t] {
			if math.IsNaN(g.champ[t][i]) {
				noChamp++
				continue
			}
			chs, chp, ls = append(chs, g.ch[t][i]), append(chp, g.champ[t][i]), append(ls, y)
		}
		own := metricsOf(g.ch[t], g.labels[t])
		vm[task] = map[string]registry.Metrics{ModelChallenger: own}
		if own.Examples < int64(c.cfg.Gate.MinExamples) || own.Positives == 0 || own.Positives == own.Examples {
			continue
		}
		considered++
		if len(ls) >= c.cfg.Gate.MinExamples && noChamp*2 < len(g.labels[t]) {
			a, b := metricsOf(chs, ls), metricsOf(chp, ls)
			vm[task]["champion_paired"] = b
			ok := float64(a.AUC) >= float64(b.AUC)-c.cfg.Gate.AUCMargin && float64(a.LogLoss) <= float64(b.LogLoss)+c.cfg.Gate.LogLossMargin
			reasons = append(reasons, fmt.Sprintf("%s: AUC %.4f vs champion %.4f, logloss %.4f vs %.4f over %d", task,
				float64(a.AUC), float64(b.AUC), float64(a.LogLoss), float64(b.LogLoss), len(ls)))
			pass = pass && ok
		} else {
			ok := float64(own.AUC) >= 0.5+c.cfg.Gate.AUCMargin
			reasons = append(reasons, fmt.Sprintf("%s: AUC %.4f without a champion to compare (needs ≥ %.3f) over %d", task,
				float64(own.AUC), 0.5+c.cfg.Gate.AUCMargin, own.Examples))
			pass = pass && ok
		}
	}
	if considered == 0 {
		// One class only so far: start the window again.
		for t := range numTasks {
			g.ch[t], g.champ[t], g.labels[t] = nil, nil, nil
		}
		return nil
	}
	reason := strings.Join(reasons, "; ")
	_, err := c.reg.Amend(ctx, g.version, func(v *registry.Version) error {
		if v.Metrics == nil {
			v.Metrics = map[string]map[string]registry.Metrics{}
		}
		for task, ms := range vm {
			if v.Metrics[task] == nil {
				v.Metrics[task] = map[string]registry.Metrics{}
			}
			for k, m := range ms {
				v.Metrics[task][k] = m
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	cur, err := c.reg.Get(ctx, g.version)
	if err != nil {
		return err
	}
	switch {
	case cur.Status != registry.StatusCandidate:
		// Decided meanwhile by someone else (the CLI).
	case pass:
		if c.champion != nil && c.mon != nil {
			c.recordLive(ctx, c.champion.Version.Number)
		}
		if _, err := c.reg.Promote(ctx, g.version, "gate passed: "+reason); err != nil && !errors.Is(err, registry.ErrTransition) {
			return err
		}
		c.c.Promotions++
		c.cfg.Logger.Info("challenger promoted", "version", g.version, "reason", reason)
		c.lastPoll = time.Time{}
		if err := c.pollChampion(ctx); err != nil {
			return err
		}
	default:
		if _, err := c.reg.Retire(ctx, g.version, "rejected by the gate: "+reason); err != nil && !errors.Is(err, registry.ErrTransition) {
			return err
		}
		c.c.Rejections++
		c.cfg.Logger.Info("challenger rejected", "version", g.version, "reason", reason)
	}
	c.gate = nil
	return c.nextChallenger(ctx)
}

// nextChallenger puts the newest waiting candidate under evaluation and
// retires the ones it supersedes.
func (c *core) nextChallenger(ctx context.Context) error {
	if len(c.waiting) == 0 {
		return nil
	}
	newest := c.waiting[len(c.waiting)-1]
	for _, n := range c.waiting[:len(c.waiting)-1] {
		if _, err := c.reg.Retire(ctx, n, fmt.Sprintf("superseded by version %d before evaluation", newest)); err != nil &&
			!errors.Is(err, registry.ErrTransition) && !errors.Is(err, registry.ErrNotFound) {
			return err
		}
	}
	c.waiting = nil
	m, enc := c.latest, c.latestEnc
	if newest != c.lastVersion {
		v, err := c.reg.Get(ctx, newest)
		if err != nil {
			return err
		}
		if m, err = c.reg.Model(ctx, newest); err != nil {
			return err
		}
		enc = c.base.WithFit(v.CLV.Fit())
	}
	c.gate = &gateEval{version: newest, model: m, enc: enc}
	return nil
}

// addCurvePoint appends a learning-curve point (bounded: when full, every
// other point is dropped).
func (c *core) addCurvePoint() {
	t := c.curveTask()
	pt := CurvePoint{Evaluated: c.c.Evaluated[t], EventTime: time.UnixMilli(c.maxTS).UTC(), AUC: map[string]float64{}}
	for m, name := range modelNames {
		if c.preq[t][m].Len() > 0 {
			if a := c.preq[t][m].AUC(); !math.IsNaN(a) {
				pt.AUC[name] = a
			}
		}
	}
	c.curve = append(c.curve, pt)
	if len(c.curve) > maxCurve {
		kept := c.curve[:0]
		for i, p := range c.curve {
			if i%2 == 1 || i == len(c.curve)-1 {
				kept = append(kept, p)
			}
		}
		c.curve = kept
	}
}

const maxCurve = 512

// sortedParts returns the partition ids in order.
func (c *core) sortedParts() []int {
	ids := make([]int, 0, len(c.parts))
	for id := range c.parts {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// forget drops everything held about user: its pending examples (their
// labels are marked dropped, so they are neither evaluated nor learnt),
// its matured examples not yet trained on, and its BG/NBD customer
// summary. It returns how many examples were dropped.
func (c *core) forget(user string, at time.Time) int {
	if c.erased == nil {
		c.erased = map[string]int64{}
	}
	// Remember erasures for a month of wall time: longer than any snapshot
	// stays in flight, and bounded.
	cut := at.Add(-30 * 24 * time.Hour).UnixMilli()
	for u, t := range c.erased {
		if t < cut {
			delete(c.erased, u)
		}
	}
	c.erased[user] = max(c.erased[user], at.UnixMilli())
	return c.drop(user)
}

// drop drops the examples and the customer summary of user that forget
// drops, and returns how many examples were dropped.
func (c *core) drop(user string) int {
	n := 0
	for _, p := range c.users[user] {
		for t := range numTasks {
			if p.open&(1<<t) != 0 {
				p.open &^= 1 << t
				p.label[t] = labelDropped
				c.open--
				n++
				c.drainEval(t)
			}
		}
		p.ex = nn.Example{}
	}
	delete(c.users, user)
	kept := c.ready[:0]
	for _, r := range c.ready {
		if r.p.user == user {
			n++
			continue
		}
		kept = append(kept, r)
	}
	clear(c.ready[len(kept):])
	c.ready = kept
	if c.bg != nil {
		delete(c.bg.customers, user)
	}
	return n
}

// Pending reports how many examples the trainer holds for user, pending
// or matured but not yet learnt.
func (c *core) pendingFor(user string) int {
	n := 0
	for _, p := range c.users[user] {
		if p.open != 0 {
			n++
		}
	}
	for _, r := range c.ready {
		if r.p.user == user {
			n++
		}
	}
	return n
}
