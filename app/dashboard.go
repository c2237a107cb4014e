package app

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamprofile/streamprofile/api"
	"github.com/streamprofile/streamprofile/dashboard"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/trainer"
	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/privacy"
	"github.com/streamprofile/streamprofile/stream"
)

// DemoSource implements dashboard.Source over the demo's parts. Topology,
// Group and Registry are set by RunDemo; Trainer and SegmentSizes plug the
// trainer and the scorer in (their panels stay empty while nil).
type DemoSource struct {
	// Topology is the ingest topology (its counters).
	Topology *pipeline.Topology
	// Group is the ingest consumer group (its lag).
	Group *stream.Group
	// Registry holds streamprofile_e2e_latency_seconds (the latency
	// quantiles).
	Registry prometheus.Gatherer
	// Replay is the replay's progress.
	Replay *ReplayProgress
	// Trainer, when set, feeds the learning curve: trainer.Stats' Curve
	// (the prequential AUC of the network and the baselines), examples
	// trained and champion version.
	Trainer interface{ Stats() trainer.Stats }
	// CurveTask names the task of the trainer's curve on the page.
	// Default "purchase_propensity".
	CurveTask string
	// SegmentSizes, when set, returns the segment sizes (the scorer).
	SegmentSizes func() []dashboard.Segment
}

var _ dashboard.Source = (*DemoSource)(nil)

// Pipeline implements dashboard.Source.
func (s *DemoSource) Pipeline() dashboard.Pipeline {
	var p dashboard.Pipeline
	if s.Topology != nil {
		st := s.Topology.Stats()
		p.Consumed, p.Valid, p.Applied = st.Consumed.Load(), st.Valid.Load(), st.Applied.Load()
		p.Deduplicated, p.DeadLettered = st.Duplicates.Load(), st.DeadLetter.Load()
	}
	p.Lag = -1
	if s.Group != nil {
		parts := s.Group.Assigned()
		p.Partitions = len(parts)
		for _, l := range parts {
			if l >= 0 {
				p.Lag = max(p.Lag, 0) + l
			}
		}
	}
	if s.Registry != nil {
		p.Latency = latencyHistogram(s.Registry, observability.StageIngest, observability.OutputProfile)
	}
	if s.Replay != nil {
		p.Replay = s.Replay.Read()
	}
	return p
}

// latencyHistogram reads one series of streamprofile_e2e_latency_seconds.
func latencyHistogram(g prometheus.Gatherer, stage, output string) dashboard.Histogram {
	mfs, err := g.Gather()
	if err != nil {
		return dashboard.Histogram{}
	}
	for _, mf := range mfs {
		if mf.GetName() != observability.Namespace+"_e2e_latency_seconds" {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "stage" && l.GetValue() != stage) || (l.GetName() == "output" && l.GetValue() != output) {
					continue metric
				}
			}
			h := m.GetHistogram()
			out := dashboard.Histogram{Count: h.GetSampleCount()}
			for _, b := range h.GetBucket() {
				out.Bounds = append(out.Bounds, b.GetUpperBound())
				out.Counts = append(out.Counts, b.GetCumulativeCount())
			}
			return out
		}
	}
	return dashboard.Histogram{}
}

// Learning implements dashboard.Source.
func (s *DemoSource) Learning() dashboard.Learning {
	if s.Trainer == nil {
		return dashboard.Learning{}
	}
	return learningOf(s.Trainer.Stats(), s.CurveTask)
}

// learningOf converts the trainer's statistics for the dashboard.
func learningOf(st trainer.Stats, task string) dashboard.Learning {
	if task == "" {
		task = "purchase_propensity"
	}
	l := dashboard.Learning{Task: task, Champion: st.Champion}
	for _, ts := range st.Tasks {
		l.Examples += ts.Trained
	}
	for _, p := range st.Curve {
		l.Curve = append(l.Curve, dashboard.CurvePoint{Evaluated: p.Evaluated, EventTime: p.EventTime, AUC: p.AUC})
	}
	return l
}

// Segments implements dashboard.Source.
func (s *DemoSource) Segments() []dashboard.Segment {
	if s.SegmentSizes == nil {
		return nil
	}
	segs := s.SegmentSizes()
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].Members > segs[j].Members })
	return segs
}

// ReplayProgress is a replay's progress, safe for concurrent use.
type ReplayProgress struct {
	published, total atomic.Int64
	done             atomic.Bool
	mu               sync.Mutex
	newest           time.Time
}

// Start sets the number of records to publish (0: unknown).
func (r *ReplayProgress) Start(total int64) { r.total.Store(total) }

// Published records the running total of published records.
func (r *ReplayProgress) Published(n int64) { r.published.Store(n) }

// Saw records an event time read from the source.
func (r *ReplayProgress) Saw(t time.Time) {
	r.mu.Lock()
	if t.After(r.newest) {
		r.newest = t
	}
	r.mu.Unlock()
}

// Done marks the replay finished.
func (r *ReplayProgress) Done() { r.done.Store(true) }

// Read returns the progress.
func (r *ReplayProgress) Read() dashboard.Replay {
	r.mu.Lock()
	newest := r.newest
	r.mu.Unlock()
	return dashboard.Replay{Published: r.published.Load(), Total: r.total.Load(), Done: r.done.Load(), EventTime: newest.UTC()}
}

// progressSource reports the event times a replay reads.
type progressSource struct {
	stream.ReplaySource
	p *ReplayProgress
}

func (s progressSource) Next() (stream.ReplayRecord, error) {
	rec, err := s.ReplaySource.Next()
	if err == nil && !rec.Time.IsZero() {
		s.p.Saw(rec.Time)
	}
	return rec, err
}

// StoreProfiles answers profile lookups from the feature store exactly as
// the serve role's GET /v1/profiles/{id} does: the id is pseudonymised
// when ps is set (nil: ids are stored as they are), identity aliases are
// followed, features are evaluated at the newest event time the ingest
// group has checkpointed (replayed history stays meaningful), and the
// segments and scores the scorer stored are included.
func StoreProfiles(store *features.Store, ps *privacy.Pseudonymizer, cfg features.Config) api.Profiles {
	s := &Server{
		cfg: ServeConfig{Features: cfg.WithDefaults(), Clock: "stream"},
		rdb: store.Client(), store: store, ps: ps, clock: &streamClock{store: store},
	}
	return (*profiles)(s)
}
