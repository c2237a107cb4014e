package scorer

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// Sender writes messages and returns once they are acknowledged
// (stream.Producer).
type Sender interface {
	Send(ctx context.Context, msgs ...kafka.Message) error
}

// Scorer scores profile snapshots, evaluates segments and emits segment
// changes and retargeting triggers. It creates one processor per assigned
// partition of the snapshot topic (Factory, for stream.NewGroup); its
// methods are safe for concurrent use.
type Scorer struct {
	cfg        Config
	rdb        redis.UniversalClient
	st         *store
	sender     Sender
	stats      *counters
	sketches   *segment.Sketches
	defaultCat *segment.Catalogue
	// latency observers of Config.Metrics (nil: off)
	changeLat, triggerLat *observability.OutputLatency

	mu    sync.Mutex
	procs map[*processor]struct{}
}

// New returns a scorer over rdb (a *redis.Client or *redis.ClusterClient)
// that emits with sender.
func New(cfg Config, rdb redis.UniversalClient, sender Sender) (*Scorer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rdb == nil || sender == nil {
		return nil, fmt.Errorf("%w: redis client and sender are required", ErrConfig)
	}
	cfg = cfg.WithDefaults()
	st, err := newStore(rdb, &cfg)
	if err != nil {
		return nil, err
	}
	sk, err := segment.NewSketches(cfg.Sketch, segment.ScoreNames()...)
	if err != nil {
		return nil, err
	}
	s := &Scorer{cfg: cfg, rdb: rdb, st: st, sender: sender, stats: newCounters(), sketches: sk, procs: map[*processor]struct{}{},
		changeLat: cfg.Metrics.Output(OutputSegmentChange), triggerLat: cfg.Metrics.Output(observability.OutputTrigger)}
	// The default catalogue also stands in when Config.Catalogue returns
	// nil; it is loaded here, once, because processors read it
	// concurrently.
	if s.defaultCat, err = segment.Default(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the effective configuration.
func (s *Scorer) Config() Config { return s.cfg }

// catalogue returns the catalogue in force.
func (s *Scorer) catalogue() *segment.Catalogue {
	if s.cfg.Catalogue != nil {
		if c := s.cfg.Catalogue(); c != nil {
			return c
		}
	}
	return s.defaultCat
}

// Catalogue returns the segment catalogue in force.
func (s *Scorer) Catalogue() *segment.Catalogue { return s.catalogue() }

// Factory returns the processor factory for stream.NewGroup.
func (s *Scorer) Factory() stream.ProcessorFactory {
	return func(p stream.Partition) (stream.Processor, error) {
		if p.Topic != s.cfg.Topic {
			return nil, fmt.Errorf("scorer: unexpected topic %q", p.Topic)
		}
		return newProcessor(s, p), nil
	}
}

// Topics lists the topics the scorer reads and writes.
func (s *Scorer) Topics(partitions int) []stream.TopicSpec {
	return []stream.TopicSpec{
		{Name: s.cfg.Topic, Partitions: partitions},
		{Name: s.cfg.ChangesTopic, Partitions: partitions},
		{Name: s.cfg.RetargetTopic, Partitions: partitions},
	}
}

// Stats returns a snapshot of the counters.
func (s *Scorer) Stats() Stats {
	st := s.stats.snapshot()
	if c := s.cfg.Champion.Load(); c != nil {
		st.ModelVersion = c.Version.Number
	}
	return st
}

// RefreshMembers reads every segment's member count from its index (for
// Stats).
func (s *Scorer) RefreshMembers(ctx context.Context) error {
	infos, err := Segments(ctx, s.rdb, s.cfg.Prefix, s.catalogue())
	if err != nil {
		return err
	}
	s.stats.mu.Lock()
	for _, in := range infos {
		s.stats.members[in.Name] = in.Members
	}
	s.stats.mu.Unlock()
	return nil
}

func (s *Scorer) register(p *processor) {
	s.mu.Lock()
	s.procs[p] = struct{}{}
	s.mu.Unlock()
}

func (s *Scorer) unregister(p *processor) {
	s.mu.Lock()
	delete(s.procs, p)
	s.mu.Unlock()
	// Whoever waits on p's erasure notes need not wait for it: a new
	// processor of the partition loads no erased user.
	p.mu.Lock()
	for _, n := range p.inbox {
		p.awaiting = append(p.awaiting, n.done)
	}
	p.inbox = nil
	p.mu.Unlock()
	for _, d := range p.awaiting {
		close(d)
	}
	p.awaiting = nil
}

// Forget makes the scorer forget erased users (an erasure record's user
// and the ids merged into it). A user whose erasure marker no longer
// exists (who consented again since) is left alone. For the others it
// deletes the scorer's keys, removes them from every segment index and
// timer set, makes the live processors drop them from their caches and
// item tables, and waits (at most wait) until each has saved its item
// table without them; then it removes the index entries once more, in
// case a flush under way re-added one. The caller acknowledges the
// erasure receipt afterwards (step ErasureStep).
func (s *Scorer) Forget(ctx context.Context, ids []string, wait time.Duration) error {
	var users []string
	for _, u := range ids {
		ok, err := s.st.erased(ctx, u)
		if err != nil {
			return fmt.Errorf("scorer: forget: %w", err)
		}
		if ok {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil
	}
	var segs []string
	for _, sg := range s.catalogue().Segments() {
		segs = append(segs, sg.Name)
	}
	if err := s.st.forget(ctx, users, segs); err != nil {
		return err
	}
	s.mu.Lock()
	var dones []chan struct{}
	for p := range s.procs {
		d := make(chan struct{})
		p.notify(erasureNote{users: users, done: d})
		dones = append(dones, d)
	}
	s.mu.Unlock()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
waiting:
	for _, d := range dones {
		select {
		case <-d:
		case <-timeout.C:
			s.cfg.Logger.Warn("scorer: erasure: a partition processor did not flush in time; its item table is cleaned at its next flush")
			break waiting
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := s.st.forget(ctx, users, segs); err != nil {
		return err
	}
	s.stats.erased.Add(int64(len(users)))
	return nil
}

// Result is a scored snapshot.
type Result struct {
	// ModelVersion is the champion that produced the network scores (0:
	// none).
	ModelVersion int64
	// Scores holds every score known for the snapshot, by name (see
	// segment.ScoreNames).
	Scores map[string]float64
	// Explanations holds, for each network score (purchase_propensity,
	// repeat_purchase_90d, churn_risk), the top contributions: the score
	// minus the score with that input absent.
	Explanations map[string][]Contribution
}

// Score scores one snapshot with the champion in force, as the processors
// do (network scores with explanations, BG/NBD and Gamma-Gamma
// baselines).
func (s *Scorer) Score(snap *features.Snapshot) (Result, error) {
	return s.ScoreWith(snap, s.cfg.Champion.Load())
}

// ScoreWith scores one snapshot with a given model version (nil: none)
// instead of the champion: for reports that must say what a version that
// was never promoted would score.
func (s *Scorer) ScoreWith(snap *features.Snapshot, served *registry.Served) (Result, error) {
	var n netScorer
	n.top = s.cfg.ExplainTop
	n.bind(served)
	net, expl, err := n.score(snap)
	if err != nil {
		return Result{}, err
	}
	var clv *registry.CLVParams
	if served != nil {
		clv = served.Version.CLV
	}
	var sc scores
	v := snap.Vector()
	fillScores(net, clv, &v, &sc)
	r := Result{ModelVersion: n.version(), Scores: map[string]float64{}, Explanations: map[string][]Contribution{}}
	for i, x := range sc {
		if !math.IsNaN(x) {
			r.Scores[scoreNames[i]] = x
		}
	}
	if len(expl[headPurchase]) > 0 {
		r.Explanations[scoreNames[sPurchase]] = publicExplanation(expl[headPurchase], false)
	}
	if len(expl[headRepeat]) > 0 {
		r.Explanations[scoreNames[sRepeat]] = publicExplanation(expl[headRepeat], false)
		r.Explanations[scoreNames[sChurn]] = publicExplanation(expl[headRepeat], true)
	}
	return r, nil
}

// SegmentInfo describes one segment of the catalogue.
type SegmentInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Members is the size of the segment's member index.
	Members int64 `json:"members"`
}

// Segments lists the catalogue's segments with their member counts, read
// from the member indexes (one round trip).
func Segments(ctx context.Context, rdb redis.UniversalClient, prefix string, cat *segment.Catalogue) ([]SegmentInfo, error) {
	segs := cat.Segments()
	cmds := make([]*redis.IntCmd, len(segs))
	_, err := rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, sg := range segs {
			cmds[i] = pl.SCard(ctx, indexKey(prefix, sg.Name))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scorer: segments: %w", err)
	}
	out := make([]SegmentInfo, len(segs))
	for i, sg := range segs {
		out[i] = SegmentInfo{Name: sg.Name, Description: sg.Description, Members: cmds[i].Val()}
	}
	return out, nil
}

// MaxPage bounds Members' limit.
const MaxPage = 1000

// Members returns up to limit (at most MaxPage) members of the segment
// name, starting at cursor ("" for the first page), and the cursor of the
// next page ("" after the last). It scans the segment's index with SSCAN,
// so pages cost O(limit) whatever the segment's size, and every member
// present for the whole scan is returned at least once; a member may be
// returned twice (an index rehash, or a member removed while the scan
// stood just after it), and members added or removed meanwhile may or may
// not appear. name must be in cat (ErrUnknownSegment); cursor must be one
// Members returned (ErrBadCursor).
func Members(ctx context.Context, rdb redis.UniversalClient, prefix string, cat *segment.Catalogue, name, cursor string, limit int) ([]string, string, error) {
	if _, ok := cat.Segment(name); !ok {
		return nil, "", fmt.Errorf("%w: %q", ErrUnknownSegment, name)
	}
	limit = min(max(limit, 1), MaxPage)
	cur, after, err := parseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	key := indexKey(prefix, name)
	out := make([]string, 0, limit)
	for {
		// SSCAN's COUNT is a hint: a small set comes back whole. A batch
		// larger than the page is cut, and the next page rescans the same
		// cursor and resumes after the last member returned.
		keys, next, err := rdb.SScan(ctx, key, cur, "", int64(max(limit-len(out), 10))).Result()
		if err != nil {
			return nil, "", fmt.Errorf("scorer: members of %s: %w", name, err)
		}
		if after != "" {
			if i := slices.Index(keys, after); i >= 0 {
				keys = keys[i+1:]
			}
			after = ""
		}
		if need := limit - len(out); len(keys) > need {
			out = append(out, keys[:need]...)
			return out, formatCursor(cur, out[len(out)-1]), nil
		}
		out = append(out, keys...)
		cur = next
		if cur == 0 {
			return out, "", nil
		}
		if len(out) == limit {
			return out, formatCursor(cur, ""), nil
		}
	}
}

// formatCursor encodes an SSCAN cursor and the member to resume after:
// "<hex cursor>" or "<hex cursor>.<base64url member>".
func formatCursor(cur uint64, after string) string {
	s := strconv.FormatUint(cur, 16)
	if after != "" {
		s += "." + base64.RawURLEncoding.EncodeToString([]byte(after))
	}
	return s
}

func parseCursor(c string) (uint64, string, error) {
	if c == "" {
		return 0, "", nil
	}
	num, after, dotted := strings.Cut(c, ".")
	cur, err := strconv.ParseUint(num, 16, 64)
	bad := err != nil || strconv.FormatUint(cur, 16) != num || (cur == 0 && !dotted)
	var member []byte
	if !bad && dotted {
		member, err = base64.RawURLEncoding.Strict().DecodeString(after)
		bad = err != nil || len(member) == 0
	}
	if bad {
		return 0, "", fmt.Errorf("%w: %q", ErrBadCursor, c)
	}
	return cur, string(member), nil
}
