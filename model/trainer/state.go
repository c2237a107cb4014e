package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
)

// stateFormat is the version of the persisted trainer state.
const stateFormat = 1

// persisted is the trainer state stored with each version. See doc.go,
// "Restarts".
type persisted struct {
	Format     int                  `json:"format"`
	SchemaHash string               `json:"schema_hash"`
	Partitions map[int]*partPersist `json:"partitions"`
	Dedupe     []uint64             `json:"dedupe"`
	Logistic   []*logistic          `json:"logistic"`
	Counters   counters             `json:"counters"`
	Lineage    int64                `json:"lineage"`
	Trained    []string             `json:"trained,omitempty"`
	// Inline holds the pending examples with a long horizon (the repeat
	// task open), stored whole so that a restart need not replay months of
	// input.
	Inline []inlinePending `json:"inline,omitempty"`
}

// inlinePending is a pending example stored in the state.
type inlinePending struct {
	ID       string                     `json:"id"`
	User     string                     `json:"user"`
	Part     int                        `json:"part"`
	Offset   int64                      `json:"offset"`
	TS       int64                      `json:"ts"`
	Open     uint8                      `json:"open"`
	Deadline [numTasks]int64            `json:"deadline"`
	Numeric  []float64                  `json:"numeric"`
	Tokens   map[string][]uint32        `json:"tokens,omitempty"`
	Scores   [numTasks][]registry.Float `json:"scores"`
	Chal     int64                      `json:"chal"`
	Champ    int64                      `json:"champ"`
}

// partPersist is one partition's restart point.
type partPersist struct {
	// Next: every offset below was consumed.
	Next int64 `json:"next"`
	// ReplayFrom is where the next incarnation reads from: the oldest
	// pending example's offset (Next when none).
	ReplayFrom int64 `json:"replay_from"`
	MaxTS      int64 `json:"max_ts"`
	HasTS      bool  `json:"has_ts"`
	// Pending lists [offset, task mask] of the examples still pending.
	Pending [][2]int64 `json:"pending"`
}

// decodeState parses and checks a stored state.
func decodeState(b []byte) (*persisted, error) {
	var st persisted
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("%w: format %d", ErrState, st.Format)
	}
	for id, p := range st.Partitions {
		if p == nil || id < 0 || p.Next < 0 || p.ReplayFrom < 0 || p.ReplayFrom > p.Next {
			return nil, fmt.Errorf("%w: partition %d position", ErrState, id)
		}
		for _, e := range p.Pending {
			if e[0] < p.ReplayFrom || e[0] >= p.Next || e[1] <= 0 || e[1] >= 1<<numTasks {
				return nil, fmt.Errorf("%w: partition %d pending entry %v", ErrState, id, e)
			}
		}
	}
	return &st, nil
}

func (c *core) buildState() *persisted {
	st := &persisted{Format: stateFormat, SchemaHash: c.hash, Partitions: map[int]*partPersist{}, Dedupe: c.dd.hashes(),
		Logistic: c.logit[:], Counters: c.c, Lineage: c.lineageCount, Trained: c.audit}
	for id, ps := range c.parts {
		if ps.next < 0 {
			continue
		}
		pp := &partPersist{Next: max(ps.next, ps.replayUntil), MaxTS: ps.maxTS, HasTS: ps.hasTS}
		st.Partitions[id] = pp
		for off, mask := range ps.replaySet {
			if off >= ps.next {
				pp.Pending = append(pp.Pending, [2]int64{off, int64(mask)})
			}
		}
	}
	for _, list := range c.users {
		for _, p := range list {
			pp := st.Partitions[p.part]
			if p.open == 0 || pp == nil {
				continue
			}
			if p.open&(1<<taskRepeat) == 0 {
				pp.Pending = append(pp.Pending, [2]int64{p.offset, int64(p.open)})
				continue
			}
			ip := inlinePending{ID: p.id, User: p.user, Part: p.part, Offset: p.offset, TS: p.ts, Open: p.open, Deadline: p.deadline,
				Numeric: p.ex.Numeric, Tokens: p.ex.Tokens, Chal: p.chal, Champ: p.champ}
			for t := range numTasks {
				ip.Scores[t] = make([]registry.Float, numModels)
				for m := range numModels {
					ip.Scores[t][m] = registry.Float(p.scores[t][m])
				}
			}
			st.Inline = append(st.Inline, ip)
		}
	}
	slices.SortFunc(st.Inline, func(a, b inlinePending) int { return int(a.Offset - b.Offset) })
	for _, pp := range st.Partitions {
		slices.SortFunc(pp.Pending, func(a, b [2]int64) int { return int(a[0] - b[0]) })
		pp.ReplayFrom = pp.Next
		if len(pp.Pending) > 0 {
			pp.ReplayFrom = pp.Pending[0][0]
		}
	}
	return st
}

// checkpoint trains what has matured, then cuts a version with the
// network's weights and the trainer state.
func (c *core) checkpoint(ctx context.Context) error {
	c.train(true)
	m, err := c.net.Snapshot()
	if err != nil {
		return err
	}
	st, err := json.Marshal(c.buildState())
	if err != nil {
		return err
	}
	offsets := map[int]int64{}
	for id, ps := range c.parts {
		if ps.next >= 0 {
			offsets[id] = max(ps.next, ps.replayUntil)
		}
	}
	v, err := c.reg.Create(ctx, registry.Version{
		Parent: c.parent, SchemaHash: c.hash, Arch: c.cfg.Arch, Topic: c.cfg.Topic, Offsets: offsets,
		Examples: c.lineageCount, Metrics: c.metricsMap(), CLV: c.bg.params,
	}, m, st)
	if err != nil {
		return err
	}
	c.c.Versions++
	c.pruneStates(ctx, v.Number)
	c.lastVersion, c.parent, c.latest, c.latestEnc = v.Number, v.Number, m, c.enc
	c.audit = nil
	c.batchesSinceCP, c.trainedSinceCP = 0, 0
	c.lastCP = c.cfg.Now()
	if c.gate == nil && !c.cfg.Gate.Disabled {
		c.gate = &gateEval{version: v.Number, model: m, enc: c.enc}
	} else if !c.cfg.Gate.Disabled {
		c.waiting = append(c.waiting, v.Number)
	}
	for _, ps := range c.parts {
		if ps.feed != nil && ps.next >= 0 {
			ps.feed.Committed(ps.next)
		}
	}
	return nil
}

// pruneStates drops the inline pending examples (user ids, inputs and
// scores) from the trainer states of the versions before latest: only the
// latest version's state is resumed from, and an erased user's examples
// must not outlive the next version in older ones. The rest of an older
// state (positions, dedupe hashes, baselines, counters, the audit of what
// was learnt) stays. A failure is logged and retried at the next version.
func (c *core) pruneStates(ctx context.Context, latest int64) {
	n, err := c.reg.PruneStates(ctx, latest, func(_ int64, state []byte) ([]byte, error) {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(state, &fields); err != nil {
			return nil, nil // not a trainer state: nothing to keep
		}
		if _, ok := fields["inline"]; !ok {
			return state, nil
		}
		delete(fields, "inline")
		return json.Marshal(fields)
	})
	if err != nil {
		c.cfg.Logger.Warn("pruning older versions' trainer states failed; retried at the next version", "err", err)
	} else if n > 0 {
		c.cfg.Logger.Debug("pruned pending examples from older versions' trainer states", "versions", n)
	}
}

// metricsMap reports every model's prequential window per task.
func (c *core) metricsMap() map[string]map[string]registry.Metrics {
	out := map[string]map[string]registry.Metrics{}
	for t := range numTasks {
		if c.heads[t] < 0 {
			continue
		}
		ms := map[string]registry.Metrics{}
		for m, name := range modelNames {
			if c.preq[t][m].Len() > 0 {
				ms[name] = report(c.preq[t][m])
			}
		}
		out[c.cfg.Arch.Heads[c.heads[t]]] = ms
	}
	return out
}

// restore loads the latest version's weights and trainer state, or starts
// a fresh network when the registry is empty.
func (c *core) restore(ctx context.Context) error {
	fresh := func() error {
		net, err := nn.NewNetwork(c.cfg.Arch)
		if err != nil {
			return err
		}
		m, err := net.Snapshot()
		if err != nil {
			net.Close()
			return err
		}
		c.net, c.latest = net, m
		return nil
	}
	meta, err := c.reg.Meta(ctx)
	if err != nil {
		return err
	}
	if meta.Latest == 0 {
		return fresh()
	}
	v, err := c.reg.Get(ctx, meta.Latest)
	if err != nil {
		return err
	}
	c.pruneStates(ctx, v.Number)
	raw, err := c.reg.State(ctx, v.Number)
	if err != nil {
		return err
	}
	c.lastVersion = v.Number
	// The BG/NBD fit in force is the latest version's until the next
	// refit: examples keep their derived inputs across a restart.
	if v.CLV != nil {
		c.bg.params = v.CLV
		c.enc = c.base.WithFit(v.CLV.Fit())
	}
	if v.SchemaHash == c.hash {
		m, err := c.reg.Model(ctx, v.Number)
		if err != nil {
			return err
		}
		net, err := nn.NewNetworkFrom(m)
		if err != nil {
			return err
		}
		c.net, c.latest, c.latestEnc, c.parent = net, m, c.enc, v.Number
		if v.Status == registry.StatusCandidate && !c.cfg.Gate.Disabled {
			c.gate = &gateEval{version: v.Number, model: m, enc: c.enc}
		}
	} else {
		c.cfg.Logger.Warn("latest version has another feature schema; training a new network from scratch",
			"version", v.Number, "its_schema", v.SchemaHash, "schema", c.hash)
		if err := fresh(); err != nil {
			return err
		}
	}
	if raw == nil {
		return nil
	}
	st, err := decodeState(raw)
	if err != nil {
		return err
	}
	for id, pp := range st.Partitions {
		ps := c.part(id)
		ps.next, ps.resume, ps.maxTS, ps.hasTS = pp.Next, pp.ReplayFrom, pp.MaxTS, pp.HasTS
		c.maxTS = max(c.maxTS, pp.MaxTS)
		if len(pp.Pending) > 0 {
			ps.replayUntil = pp.Next
			ps.replaySet = make(map[int64]uint8, len(pp.Pending))
			for _, e := range pp.Pending {
				ps.replaySet[e[0]] = uint8(e[1])
			}
			ps.next = pp.ReplayFrom
		}
	}
	for _, ip := range st.Inline {
		if ip.Open == 0 || ip.Open >= 1<<numTasks || len(ip.Numeric) != len(c.cfg.Arch.NumericFeatures) || v.SchemaHash != c.hash {
			continue
		}
		ps := c.part(ip.Part)
		c.seq++
		p := &pending{id: ip.ID, user: ip.User, part: ip.Part, offset: ip.Offset, ts: ip.TS, day: floorDiv(ip.TS, 86400000),
			ex: nn.Example{Numeric: ip.Numeric, Tokens: ip.Tokens}, open: ip.Open, deadline: ip.Deadline, chal: ip.Chal, champ: ip.Champ,
			seq: c.seq, label: [numTasks]int8{labelUnknown, labelUnknown}}
		for t := range numTasks {
			for m := range numModels {
				p.scores[t][m] = math.NaN()
				if m < len(ip.Scores[t]) {
					p.scores[t][m] = float64(ip.Scores[t][m])
				}
			}
			if p.open&(1<<t) != 0 {
				ps.dl.push(deadlineItem{deadline: p.deadline[t], p: p, task: t})
				c.open++
				c.evalQ[t].push(p)
			}
		}
		c.users[p.user] = append(c.users[p.user], p)
		c.queue.push(p)
	}
	for _, h := range st.Dedupe {
		c.dd.add(h)
	}
	if st.SchemaHash == c.hash && len(st.Logistic) == numTasks {
		for t, l := range st.Logistic {
			if l != nil && l.Rule == logisticRule && len(l.W) == len(c.cfg.Arch.NumericFeatures) && len(l.Mean) == len(l.W) && len(l.M2) == len(l.W) && finite(l.W) {
				c.logit[t].W, c.logit[t].B, c.logit[t].N, c.logit[t].Mean, c.logit[t].M2 = l.W, l.B, l.N, l.Mean, l.M2
			}
		}
	}
	c.c = st.Counters
	for t := range numTasks {
		c.trainedAtStart += st.Counters.Trained[t]
	}
	if v.SchemaHash == c.hash {
		c.lineageCount = st.Lineage
	}
	return nil
}

func finite(xs []float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// LearntIDs returns the ids ("<snapshot id>/<head>") of the examples learnt
// since the parent version, from a version's stored trainer state
// (recorded only with Config.AuditTrained).
func LearntIDs(state []byte) ([]string, error) {
	st, err := decodeState(state)
	if err != nil {
		return nil, err
	}
	return st.Trained, nil
}
