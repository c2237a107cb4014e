package scorer

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// latency is a histogram of durations in logarithmic buckets (10 per
// decade from 10µs to 1000s), for quantiles within about 12%. Safe for
// concurrent use.
type latency struct {
	buckets [latencyBuckets]atomic.Int64
	count   atomic.Int64
}

const (
	latencyBuckets = 81 // 1e-5 s .. 1e3 s
	latencyMin     = 1e-5
)

func (l *latency) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	if s > latencyMin {
		i = int(math.Ceil(10 * math.Log10(s/latencyMin)))
	}
	l.buckets[min(max(i, 0), latencyBuckets-1)].Add(1)
	l.count.Add(1)
}

// quantile returns the upper bound of the bucket holding quantile q.
func (l *latency) quantile(q float64) time.Duration {
	n := l.count.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range l.buckets {
		seen += l.buckets[i].Load()
		if seen >= rank {
			return time.Duration(latencyMin * math.Pow(10, float64(i)/10) * float64(time.Second))
		}
	}
	return time.Duration(latencyMin * math.Pow(10, float64(latencyBuckets-1)/10) * float64(time.Second))
}

// counters are the scorer's live counters.
type counters struct {
	snapshots   atomic.Int64
	invalid     atomic.Int64
	replayed    atomic.Int64
	timers      atomic.Int64
	priceChecks atomic.Int64
	erased      atomic.Int64
	retired     atomic.Int64
	consent     atomic.Int64
	withdrawn   atomic.Int64
	flushes     atomic.Int64
	emitted     atomic.Int64
	explainNs   atomic.Int64
	explains    atomic.Int64
	handleNs    atomic.Int64

	mu         sync.Mutex
	enters     map[string]int64
	exits      map[string]int64
	members    map[string]int64 // last read from the indexes
	triggers   map[string]int64
	suppressed map[string]map[string]int64 // reason → kind → n

	changeLatency  latency // snapshot appended → change acknowledged
	triggerLatency latency // snapshot appended → trigger acknowledged
}

func newCounters() *counters {
	return &counters{enters: map[string]int64{}, exits: map[string]int64{}, members: map[string]int64{},
		triggers: map[string]int64{}, suppressed: map[string]map[string]int64{}}
}

func (c *counters) suppress(reason, kind string) {
	c.mu.Lock()
	m := c.suppressed[reason]
	if m == nil {
		m = map[string]int64{}
		c.suppressed[reason] = m
	}
	m[kind]++
	c.mu.Unlock()
}

// SegmentStats counts one segment's members and transitions.
type SegmentStats struct {
	// Members is the size of the segment's index as last read (every few
	// seconds while Run runs).
	Members int64 `json:"members"`
	// Enters and Exits count the changes this process emitted.
	Enters int64 `json:"enters"`
	Exits  int64 `json:"exits"`
}

// LatencyStats summarises ingest → emit latency: from the Kafka append time
// of the clickstream record behind a snapshot to the acknowledgement of the
// change or trigger it caused.
type LatencyStats struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50"`
	P99   time.Duration `json:"p99"`
}

// Stats is a snapshot of the scorer's counters.
type Stats struct {
	// Snapshots scored; Invalid snapshots skipped; Replayed snapshots
	// skipped because a previous run had applied them.
	Snapshots int64 `json:"snapshots"`
	Invalid   int64 `json:"invalid"`
	Replayed  int64 `json:"replayed"`
	// Timers fired (evaluations without an event).
	Timers int64 `json:"timers"`
	// Erased counts users forgotten after an erasure record; Retired users
	// whose retention ended.
	Erased  int64 `json:"erased"`
	Retired int64 `json:"retired"`
	// Consent counts consent snapshots applied (not scored, not in
	// Snapshots); Withdrawn those of them that withdrew profiling, each
	// forgetting its user.
	Consent   int64 `json:"consent"`
	Withdrawn int64 `json:"withdrawn"`
	// Flushes and Emitted messages (changes and triggers).
	Flushes int64 `json:"flushes"`
	Emitted int64 `json:"emitted"`
	// Segments per segment name.
	Segments map[string]SegmentStats `json:"segments"`
	// Triggers emitted per kind.
	Triggers map[string]int64 `json:"triggers"`
	// Suppressed triggers per reason (consent, quiet, cap, expired) and
	// kind.
	Suppressed map[string]map[string]int64 `json:"suppressed"`
	// ChangeLatency and TriggerLatency: ingest → emit, for changes and
	// triggers caused by events (timers have no ingest time).
	ChangeLatency  LatencyStats `json:"change_latency"`
	TriggerLatency LatencyStats `json:"trigger_latency"`
	// HandleMean is the mean time to handle one snapshot (score, explain,
	// segments, triggers; no I/O); ExplainMean the part spent explaining.
	HandleMean  time.Duration `json:"handle_mean"`
	ExplainMean time.Duration `json:"explain_mean"`
	// ModelVersion is the champion in use (0: none).
	ModelVersion int64 `json:"model_version"`
}

func (c *counters) snapshot() Stats {
	st := Stats{
		Snapshots: c.snapshots.Load(), Invalid: c.invalid.Load(), Replayed: c.replayed.Load(),
		Timers: c.timers.Load(), Erased: c.erased.Load(), Retired: c.retired.Load(),
		Consent: c.consent.Load(), Withdrawn: c.withdrawn.Load(),
		Flushes: c.flushes.Load(), Emitted: c.emitted.Load(),
		Segments: map[string]SegmentStats{}, Triggers: map[string]int64{}, Suppressed: map[string]map[string]int64{},
	}
	c.mu.Lock()
	names := map[string]bool{}
	for _, m := range []map[string]int64{c.enters, c.exits, c.members} {
		for k := range m {
			names[k] = true
		}
	}
	for n := range names {
		st.Segments[n] = SegmentStats{Members: c.members[n], Enters: c.enters[n], Exits: c.exits[n]}
	}
	for k, v := range c.triggers {
		st.Triggers[k] = v
	}
	for r, m := range c.suppressed {
		st.Suppressed[r] = map[string]int64{}
		for k, v := range m {
			st.Suppressed[r][k] = v
		}
	}
	c.mu.Unlock()
	st.ChangeLatency = LatencyStats{Count: c.changeLatency.count.Load(), P50: c.changeLatency.quantile(0.5), P99: c.changeLatency.quantile(0.99)}
	st.TriggerLatency = LatencyStats{Count: c.triggerLatency.count.Load(), P50: c.triggerLatency.quantile(0.5), P99: c.triggerLatency.quantile(0.99)}
	if n := st.Snapshots; n > 0 {
		st.HandleMean = time.Duration(c.handleNs.Load() / n)
	}
	if n := c.explains.Load(); n > 0 {
		st.ExplainMean = time.Duration(c.explainNs.Load() / n)
	}
	return st
}

// SuppressedTotal sums Suppressed over kinds, per reason.
func (s Stats) SuppressedTotal() map[string]int64 {
	out := map[string]int64{}
	for r, m := range s.Suppressed {
		for _, v := range m {
			out[r] += v
		}
	}
	return out
}

// SegmentNames returns the segment names of s.Segments in order.
func (s Stats) SegmentNames() []string {
	out := make([]string, 0, len(s.Segments))
	for n := range s.Segments {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
