package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/sink/scorer"
	"github.com/streamprofile/streamprofile/stream"
)

// scoreSpec configures the measured scorer: app.Scorer (the score role)
// with the production defaults, reading the ingester's snapshot topic.
type scoreSpec struct {
	Brokers       []string `json:"brokers"`
	Redis         string   `json:"redis"`
	DB            int      `json:"db"`
	Group         string   `json:"group"`
	Prefix        string   `json:"prefix"`
	SnapshotTopic string   `json:"snapshot_topic"`
	ChangesTopic  string   `json:"changes_topic"`
	RetargetTopic string   `json:"retarget_topic"`
	Partitions    int      `json:"partitions"`
	// Drain bounds how long the scorer, told to stop, may take to score
	// the snapshot topic to its end.
	Drain time.Duration `json:"drain"`
	// MaxSnapshots, when above 0, measures the score role's maximum
	// instead: the scorer scores the pre-loaded snapshot topic from its
	// start at full speed, from ready until it has scored MaxSnapshots
	// (at most the topic's size) or MaxWindow has passed, and reports
	// without waiting for commands.
	MaxSnapshots int64         `json:"max_snapshots,omitempty"`
	MaxWindow    time.Duration `json:"max_window,omitempty"`
}

// ScoreRun is the score role's report over a latency run.
type ScoreRun struct {
	// Snapshots scored over the whole run (warm-up included); Records is
	// the snapshot topic's size at the end; Unscored what was left when
	// the drain bound passed (0: caught up).
	Snapshots int64 `json:"snapshots"`
	Records   int64 `json:"records"`
	Unscored  int64 `json:"unscored"`
	// DrainSeconds is how long, after the ingester had drained, the scorer
	// took to score the rest.
	DrainSeconds float64 `json:"drain_seconds"`
	Timers       int64   `json:"timers"`
	Changes      int64   `json:"changes"`
	Triggers     int64   `json:"triggers"`
	Suppressed   int64   `json:"suppressed"`
	ModelVersion int64   `json:"model_version"`
	// HandleMeanUs is the mean time to handle one snapshot in the engine
	// (score, explain, segments, triggers; no I/O), ExplainMeanUs the
	// mean explanation.
	HandleMeanUs  float64 `json:"handle_mean_us"`
	ExplainMeanUs float64 `json:"explain_mean_us"`
	// CPUSecondsPerMillion is the process's CPU time per million
	// snapshots scored over the measured window.
	CPUSecondsPerMillion float64   `json:"cpu_seconds_per_million"`
	CPUUtilisation       float64   `json:"cpu_utilisation"`
	Proc                 ProcStats `json:"proc"`
	// Seconds and SnapshotsPerSec: the measured window and the rate of
	// snapshots scored in it (the maximum run only, scoreSpec.MaxSnapshots).
	Seconds         float64 `json:"seconds,omitempty"`
	SnapshotsPerSec float64 `json:"snapshots_per_sec,omitempty"`
}

// benchChampion returns a directory registry (to be removed by the
// caller) whose champion is the default architecture trained for one pass
// over the sample's snapshots with labels taken from the sample (a later
// purchase by the user), so the scorer scores, explains and triggers as it
// does in production.
func benchChampion(ctx context.Context) (string, error) {
	sample, err := LoadSample()
	if err != nil {
		return "", err
	}
	snaps := sampleSnapshots(sample)
	arch := inputs.DefaultArch()
	enc, err := inputs.New(arch)
	if err != nil {
		return "", err
	}
	lastBuy := map[string]int64{}
	for i := range snaps {
		if snaps[i].Type == string(stream.TypePurchase) {
			lastBuy[snaps[i].User] = snaps[i].TS.UnixMilli()
		}
	}
	exs := labelledExamples(enc, arch, snaps, func(i, _ int) float64 {
		if lastBuy[snaps[i].User] > snaps[i].TS.UnixMilli() {
			return 1
		}
		return 0
	})
	net, err := nn.NewNetwork(arch)
	if err != nil {
		return "", err
	}
	defer net.Close()
	for i := 0; i+arch.BatchSize <= len(exs); i += arch.BatchSize {
		if _, err := net.TrainBatch(exs[i : i+arch.BatchSize]); err != nil {
			return "", err
		}
	}
	m, err := net.Snapshot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "streamprofile-bench-champion-")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(dir)
		return "", err
	}
	backend, err := registry.NewDirBackend(dir)
	if err != nil {
		return fail(err)
	}
	reg, err := registry.New(registry.Config{Backend: backend})
	if err != nil {
		return fail(err)
	}
	v, err := reg.Create(ctx, registry.Version{SchemaHash: enc.SchemaHash(), Arch: arch, Examples: int64(len(exs))}, m, nil)
	if err != nil {
		return fail(err)
	}
	if _, err := reg.Promote(ctx, v.Number, "bench"); err != nil {
		return fail(err)
	}
	return dir, nil
}

// runScore runs the measured score role; it reports its count of
// snapshot records handled through progress while it runs.
func runScore(ctx context.Context, spec *scoreSpec, log *slog.Logger, ctl *control, ready func() error,
	progress func(int64) error) (*ScoreRun, error) {
	dir, err := benchChampion(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: champion: %w", err)
	}
	defer os.RemoveAll(dir)
	s, err := app.NewScorer(app.ScoreConfig{
		Brokers: spec.Brokers, Group: spec.Group, Partitions: spec.Partitions,
		Redis: app.RedisConfig{Addr: spec.Redis, DB: spec.DB}, Registry: app.RegistryConfig{Dir: dir},
		DisableErasures: true,
		Scorer: scorer.Config{Topic: spec.SnapshotTopic, ChangesTopic: spec.ChangesTopic,
			RetargetTopic: spec.RetargetTopic, Prefix: spec.Prefix},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	g, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	defer stop()
	g.Go(func() error { return app.ServeScorer(runCtx, s, nil) })
	// Ready once every partition is assigned and the champion is loaded.
	if err := waitUntil(gctx, func() bool {
		return len(s.Group().Assigned()) >= spec.Partitions && s.Champion().Load() != nil
	}); err != nil {
		stop()
		return nil, errors.Join(g.Wait(), err)
	}
	if err := ready(); err != nil {
		return nil, err
	}
	stopProgress := reportProgress(progress, func() int64 { return handled(s.Stats()) })
	defer stopProgress()
	if spec.MaxSnapshots > 0 {
		res, err := scoreMax(gctx, spec, s)
		stopProgress()
		stop()
		if werr := g.Wait(); werr != nil && !errors.Is(werr, context.Canceled) {
			return nil, errors.Join(err, werr)
		}
		return res, err
	}
	var cpu0 time.Duration
	var st0 scorer.Stats
	select {
	case <-ctl.start:
		cpu0, st0 = cpuTime(), s.Stats()
	case <-ctl.stop:
		return nil, fmt.Errorf("%w: stopped before start", ErrWorker)
	case <-gctx.Done():
		return nil, errors.Join(g.Wait(), gctx.Err())
	}
	start := time.Now()
	select {
	case <-ctl.stop:
	case <-gctx.Done():
		return nil, errors.Join(g.Wait(), gctx.Err())
	}
	// Score the snapshot topic to its end (the ingester has drained).
	stopAt := time.Now()
	records, err := topicSize(gctx, spec.Brokers, spec.SnapshotTopic, spec.Partitions)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(spec.Drain)
	for handled(s.Stats()) < records && time.Now().Before(deadline) && gctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	// The last changes and triggers go out at the next flush.
	time.Sleep(2 * scorer.Config{}.WithDefaults().FlushInterval)
	stopProgress()
	st := s.Stats()
	el := time.Since(start)
	res := &ScoreRun{Snapshots: st.Snapshots, Records: records, DrainSeconds: time.Since(stopAt).Seconds(),
		Timers: st.Timers, ModelVersion: st.ModelVersion,
		HandleMeanUs: float64(st.HandleMean) / 1e3, ExplainMeanUs: float64(st.ExplainMean) / 1e3,
		Proc: procStats(cpuTime() - cpu0)}
	res.Unscored = max(0, records-handled(st))
	for _, seg := range st.Segments {
		res.Changes += seg.Enters + seg.Exits
	}
	for _, n := range st.Triggers {
		res.Triggers += n
	}
	for _, n := range st.SuppressedTotal() {
		res.Suppressed += n
	}
	res.CPUSecondsPerMillion = perMillion(res.Proc.CPUSeconds, st.Snapshots-st0.Snapshots)
	res.CPUUtilisation = ratio(res.Proc.CPUSeconds, el.Seconds())
	stop()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return res, nil
}

// scoreMax measures the running scorer s at full speed on a pre-loaded
// snapshot topic: from now (ready: partitions assigned, champion loaded)
// until it has scored spec.MaxSnapshots of the topic's records (all, when
// it has fewer) or spec.MaxWindow has passed.
func scoreMax(ctx context.Context, spec *scoreSpec, s *app.Scorer) (*ScoreRun, error) {
	cpu0, st0, start := cpuTime(), s.Stats(), time.Now()
	records, err := topicSize(ctx, spec.Brokers, spec.SnapshotTopic, spec.Partitions)
	if err != nil {
		return nil, err
	}
	want := min(records, spec.MaxSnapshots)
	deadline := start.Add(spec.MaxWindow)
	for handled(s.Stats()) < want && (spec.MaxWindow <= 0 || time.Now().Before(deadline)) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	el := time.Since(start)
	st := s.Stats()
	res := &ScoreRun{Snapshots: st.Snapshots - st0.Snapshots, Records: records, Timers: st.Timers - st0.Timers,
		ModelVersion: st.ModelVersion, HandleMeanUs: float64(st.HandleMean) / 1e3, ExplainMeanUs: float64(st.ExplainMean) / 1e3,
		Proc: procStats(cpuTime() - cpu0), Seconds: el.Seconds()}
	res.Unscored = max(0, want-handled(st))
	res.SnapshotsPerSec = float64(res.Snapshots) / max(el.Seconds(), 1e-9)
	res.CPUSecondsPerMillion = perMillion(res.Proc.CPUSeconds, res.Snapshots)
	res.CPUUtilisation = ratio(res.Proc.CPUSeconds, el.Seconds())
	return res, nil
}

// handled is the number of snapshot records the scorer is done with:
// scored, invalid or replayed.
func handled(st scorer.Stats) int64 { return st.Snapshots + st.Invalid + st.Replayed }

// topicSize returns the number of records in topic (partitions 0..n−1,
// all written since offset 0).
func topicSize(ctx context.Context, brokers []string, topic string, partitions int) (int64, error) {
	ends, err := endOffsets(ctx, brokers, topic, partitions)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, end := range ends {
		n += end
	}
	return n, nil
}

// endOffsets returns the next offset of each partition 0..n−1 of topic.
func endOffsets(ctx context.Context, brokers []string, topic string, partitions int) (map[int]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	reqs := make([]kafka.OffsetRequest, partitions)
	for p := range reqs {
		reqs[p] = kafka.LastOffsetOf(p)
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("bench: offsets of %s: %w", topic, err)
	}
	ends := map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, po.Error
		}
		ends[po.Partition] = po.LastOffset
	}
	return ends, nil
}

// outputLatencies is what the load generator measures on the score role's
// output topics after the window.
type outputLatencies struct {
	// Changes, Triggers: event append → record timestamp of every change
	// and trigger an event appended in the window caused (matched by
	// header scorer.HeaderSourceEvent to the event's snapshot).
	Changes  Histogram `json:"changes"`
	Triggers Histogram `json:"triggers"`
	// First: event append → its first change or trigger, once per event
	// that caused any.
	First Histogram `json:"first"`
	// WindowEvents are the snapshots of events appended in the window;
	// EventsWithOutput those of them that caused a change or trigger.
	WindowEvents     int64        `json:"window_events"`
	EventsWithOutput int64        `json:"events_with_output"`
	Counts           OutputCounts `json:"counts"`
}

// OutputCounts counts the records of the score role's output topics over
// a whole latency run (warm-up and timers included).
type OutputCounts struct {
	ChangeRecords  int64 `json:"change_records"`
	TriggerRecords int64 `json:"trigger_records"`
	// FromTimers have no source event (timers, retention); Unmatched name
	// a source event without a snapshot in the snapshot topic (0 unless
	// records were lost).
	FromTimers int64 `json:"from_timers"`
	Unmatched  int64 `json:"unmatched"`
}

// readTopic calls fn for every record of topic (partitions 0..n−1) up to
// its end at the time of the call, one partition at a time.
func readTopic(ctx context.Context, brokers []string, topic string, partitions int, fn func(m *kafka.Message)) error {
	ends, err := endOffsets(ctx, brokers, topic, partitions)
	if err != nil {
		return err
	}
	for p := range partitions {
		end := ends[p]
		if end <= 0 {
			continue
		}
		err := func() error {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: brokers, Topic: topic, Partition: p,
				MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond,
			})
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return fmt.Errorf("bench: read %s: %w", topic, err)
				}
				fn(&m)
				if m.Offset+1 >= end {
					return nil
				}
			}
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// sourceEvent returns m's scorer.HeaderSourceEvent.
func sourceEvent(m *kafka.Message) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == scorer.HeaderSourceEvent {
			return string(h.Value), true
		}
	}
	return "", false
}

// measureOutputs matches every change and trigger to the event behind it:
// appended maps every snapshot's (event's) id to its clickstream append
// time (unix ns); only events appended at or after from (unix ns) are
// measured.
func measureOutputs(ctx context.Context, spec *produceSpec, appended map[string]int64, from int64) (outputLatencies, error) {
	var out outputLatencies
	for _, t := range appended {
		if t >= from {
			out.WindowEvents++
		}
	}
	first := map[string]int64{}
	read := func(topic string, h *Histogram, records *int64) error {
		return readTopic(ctx, spec.Brokers, topic, spec.Partitions, func(m *kafka.Message) {
			*records++
			id, ok := sourceEvent(m)
			if !ok {
				out.Counts.FromTimers++
				return
			}
			app, ok := appended[id]
			if !ok {
				out.Counts.Unmatched++
				return
			}
			if app < from {
				return
			}
			t := m.Time.UnixNano()
			h.Observe(time.Duration(t - app))
			if f, ok := first[id]; !ok || t < f {
				first[id] = t
			}
		})
	}
	if err := read(spec.ChangesTopic, &out.Changes, &out.Counts.ChangeRecords); err != nil {
		return out, err
	}
	if err := read(spec.RetargetTopic, &out.Triggers, &out.Counts.TriggerRecords); err != nil {
		return out, err
	}
	for id, t := range first {
		out.First.Observe(time.Duration(t - appended[id]))
	}
	out.EventsWithOutput = int64(len(first))
	return out, nil
}

// snapshotIDField precedes the event id in an encoded snapshot.
var snapshotIDField = []byte(`"id":"`)

// snapshotID extracts Snapshot.ID from an encoded snapshot without
// decoding the rest (the first "id" key: the snapshot's own; "item_id" and
// the like do not match).
func snapshotID(v []byte) (string, bool) {
	i := bytes.Index(v, snapshotIDField)
	if i < 0 {
		return "", false
	}
	rest := v[i+len(snapshotIDField):]
	j := bytes.IndexAny(rest, `"\`)
	if j < 0 || rest[j] != '"' {
		return "", false // escaped ids are not produced by the bench
	}
	return string(rest[:j]), true
}
