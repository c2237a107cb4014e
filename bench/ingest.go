package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/stream"
)

// ingestSpec configures the measured ingester: app.Ingester with the
// production defaults (snapshot stage on, PII masking on) plus the latency
// stage.
type ingestSpec struct {
	Brokers       []string      `json:"brokers"`
	Redis         string        `json:"redis"`
	DB            int           `json:"db"`
	Group         string        `json:"group"`
	Topic         string        `json:"topic"`
	SnapshotTopic string        `json:"snapshot_topic"`
	Prefix        string        `json:"prefix"`
	Partitions    int           `json:"partitions"`
	CacheUsers    int           `json:"cache_users"`
	TTL           time.Duration `json:"ttl"`
	// Expect, when positive, is the number of records in Topic (whose end
	// offsets are Ends): the window opens at the first applied event and
	// closes when every record is durable. Otherwise the window is opened
	// by "start" and closed by "stop".
	Expect int64         `json:"expect"`
	Ends   map[int]int64 `json:"ends"`
	// CPUProfile and AllocProfile, when set, receive pprof profiles of
	// the window (CPU) and of the run (allocations).
	CPUProfile   string `json:"cpu_profile"`
	AllocProfile string `json:"alloc_profile"`
	// SnapshotJSONMarshal replaces the snapshot stage by one that encodes
	// with encoding/json (the pipeline before features.Snapshot.Encode
	// stopped using reflection), for a before/after comparison.
	SnapshotJSONMarshal bool `json:"snapshot_json_marshal"`
}

// jsonMarshalSnapshots is pipeline.SnapshotStage with the snapshot encoded
// by json.Marshal, as the pipeline did before: the same records, byte for
// byte, at the old cost.
type jsonMarshalSnapshots struct {
	topic string
	cfg   features.Config
}

func (s *jsonMarshalSnapshots) Partition(context.Context, stream.Partition) (pipeline.PartitionStage, error) {
	return s, nil
}

func (s *jsonMarshalSnapshots) Event(e *pipeline.StageEvent, out []kafka.Message) []kafka.Message {
	if e.Event.Type == stream.TypeIdentify {
		return out // as the snapshot stage: consent events get a snapshot, identify events none
	}
	snap := features.NewSnapshot(e.Event, e.User, e.State, &s.cfg, features.SnapshotSource{
		Topic: e.Msg.Topic, Partition: e.Msg.Partition, Offset: e.Msg.Offset, Appended: e.Msg.Time,
	})
	b, err := json.Marshal(&snap)
	if err != nil {
		return out
	}
	return append(out, kafka.Message{Topic: s.topic, Key: []byte(e.User), Value: b})
}

func (s *jsonMarshalSnapshots) Flushed() {}

// ingestResult is the ingester's report over its window.
type ingestResult struct {
	Events       int64   `json:"events"` // applied events made durable in the window
	Seconds      float64 `json:"seconds"`
	Rate         float64 `json:"rate"`
	Consumed     int64   `json:"consumed"`
	Applied      int64   `json:"applied"`
	DeadLettered int64   `json:"dead_lettered"`
	Duplicates   int64   `json:"duplicates"`
	Emitted      int64   `json:"emitted"`
	Flushes      int64   `json:"flushes"`
	FlushUsers   int64   `json:"flush_users"`
	FlushCmds    int64   `json:"flush_cmds"`
	// Loads are pipeline.Stats.RedisLoads: one round trip per fetched
	// batch, which loads the batch's users not cached and checks all its
	// users for an erasure. RoundTrips = Flushes + Loads.
	Loads        int64   `json:"loads"`
	RoundTrips   int64   `json:"round_trips"`
	FlushSeconds float64 `json:"flush_seconds"`
	// Durable: event append → the flush covering it returned.
	Durable Histogram `json:"durable"`
	// Processed: event append → the processor applied it (the part of
	// Durable spent before processing: Kafka, fetch, queue).
	Processed Histogram `json:"processed"`
	Proc      ProcStats `json:"proc"`
	// BusyAll and BusyOwn are the busy fractions, over the window, of all
	// CPUs and of the CPUs this process may run on, whoever used them
	// (/proc/stat): the share of the machine others took.
	BusyAll float64 `json:"busy_all_cpus"`
	BusyOwn float64 `json:"busy_own_cpus"`
}

// counters is a copy of the topology's counters.
type counters struct {
	consumed, applied, dead, dups, emitted, flushes, flushUsers, cmds, loads, flushNanos int64
}

func readCounters(s *pipeline.Stats) counters {
	return counters{
		consumed: s.Consumed.Load(), applied: s.Applied.Load(), dead: s.DeadLetter.Load(),
		dups: s.Duplicates.Load(), emitted: s.Emitted.Load(), flushes: s.Flushes.Load(),
		flushUsers: s.FlushUsers.Load(), cmds: s.RedisCmds.Load(), loads: s.RedisLoads.Load(),
		flushNanos: s.FlushNanos.Load(),
	}
}

// latencyStage observes, for every applied event, the time from its Kafka
// record timestamp to the return of the flush that made it durable
// (PartitionStage.Flushed runs right after the Redis write returns).
type latencyStage struct {
	from    atomic.Int64 // unix ns; earlier records are not measured
	onFirst func()       // called once, at the first applied event

	first     sync.Once
	mu        sync.Mutex
	hist      Histogram
	processed Histogram
	durable   int64 // measured events made durable
	lastFlush time.Time
}

func (s *latencyStage) Partition(context.Context, stream.Partition) (pipeline.PartitionStage, error) {
	return &latencyPartition{s: s, pend: make([]int64, 0, 1024), proc: make([]int64, 0, 1024)}, nil
}

type latencyPartition struct {
	s    *latencyStage
	pend []int64 // record timestamps (unix ns) of applied, unflushed events
	proc []int64 // append → applied (ns) of the same events
}

func (p *latencyPartition) Event(e *pipeline.StageEvent, out []kafka.Message) []kafka.Message {
	if p.s.onFirst != nil {
		p.s.first.Do(p.s.onFirst)
	}
	t := e.Msg.Time.UnixNano()
	p.pend = append(p.pend, t)
	p.proc = append(p.proc, time.Now().UnixNano()-t)
	return out
}

func (p *latencyPartition) Flushed() {
	now := time.Now()
	from := p.s.from.Load()
	p.s.mu.Lock()
	for i, t := range p.pend {
		if t >= from {
			p.s.hist.Observe(now.Sub(time.Unix(0, t)))
			p.s.processed.Observe(time.Duration(p.proc[i]))
			p.s.durable++
		}
	}
	if len(p.pend) > 0 {
		p.s.lastFlush = now
	}
	p.s.mu.Unlock()
	p.pend, p.proc = p.pend[:0], p.proc[:0]
}

// snapshot returns the measured events made durable and the time of the
// last flush that made any.
func (s *latencyStage) snapshot() (int64, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable, s.lastFlush
}

// runIngest runs the measured ingester; it reports its count of records
// consumed through progress while it runs.
func runIngest(ctx context.Context, spec *ingestSpec, log *slog.Logger, ctl *control, ready func() error,
	progress func(int64) error) (*ingestResult, error) {
	stage := &latencyStage{}
	var (
		mu    sync.Mutex
		start time.Time
		cpu0  time.Duration
		stat0 cpuTimes
		c0    counters
		in    *app.Ingester
	)
	open := func() {
		mu.Lock()
		defer mu.Unlock()
		start, cpu0, stat0 = time.Now(), cpuTime(), readCPUTimes()
		if spec.Expect <= 0 {
			// A fresh process has done nothing before its first event.
			c0 = readCounters(in.Topology().Stats())
		}
		if spec.CPUProfile != "" {
			if f, err := os.Create(spec.CPUProfile); err == nil {
				if pprof.StartCPUProfile(f) != nil {
					f.Close()
				}
			}
		}
	}
	if spec.Expect > 0 {
		stage.onFirst = open
	} else {
		stage.from.Store(1<<63 - 1)
	}
	stages := []pipeline.Stage{stage}
	snapTopic := spec.SnapshotTopic
	if spec.SnapshotJSONMarshal {
		stages = []pipeline.Stage{&jsonMarshalSnapshots{topic: snapTopic, cfg: features.Config{}.WithDefaults()}, stage}
		snapTopic = "-"
	}
	var err error
	in, err = app.NewIngester(app.IngestConfig{
		Brokers: spec.Brokers, Group: spec.Group, Partitions: spec.Partitions,
		Redis: app.RedisConfig{Addr: spec.Redis, DB: spec.DB},
		Store: features.StoreConfig{Prefix: spec.Prefix, TTL: spec.TTL},
		Pipeline: pipeline.Config{
			Topic: spec.Topic, DLQTopic: spec.Topic + ".dlq", CacheUsers: spec.CacheUsers,
		},
		SnapshotTopic: snapTopic, Logger: log,
	}, stages...)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	g, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	defer stop()
	g.Go(func() error { return in.Run(runCtx) })

	// Ready once every partition is assigned.
	if err := waitUntil(gctx, func() bool { return len(in.Group().Assigned()) >= spec.Partitions }); err != nil {
		stop()
		return nil, errors.Join(g.Wait(), err)
	}
	if err := ready(); err != nil {
		return nil, err
	}
	stopProgress := reportProgress(progress, in.Topology().Stats().Consumed.Load)
	defer stopProgress()

	var end time.Time
	if spec.Expect > 0 {
		end, err = waitDurable(gctx, spec, in, stage)
		if err != nil {
			stop()
			return nil, errors.Join(err, g.Wait())
		}
	} else {
		select {
		case <-ctl.start:
			stage.from.Store(time.Now().UnixNano())
			open()
		case <-ctl.stop:
			return nil, fmt.Errorf("%w: stopped before start", ErrWorker)
		case <-gctx.Done():
			return nil, errors.Join(g.Wait(), gctx.Err())
		}
		select {
		case <-ctl.stop:
		case <-gctx.Done():
			return nil, errors.Join(g.Wait(), gctx.Err())
		}
		end = time.Now()
	}
	stopProgress()
	cpu, stat1 := cpuTime(), readCPUTimes()
	mu.Lock()
	if spec.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	c1 := readCounters(in.Topology().Stats())
	res := &ingestResult{Proc: procStats(cpu - cpu0)}
	res.BusyAll = busy(stat0, stat1, nil)
	res.BusyOwn = busy(stat0, stat1, parseCPUList(res.Proc.CPUs))
	el := end.Sub(start)
	mu.Unlock()

	stage.mu.Lock()
	res.Events, res.Durable, res.Processed = stage.durable, stage.hist, stage.processed
	stage.mu.Unlock()
	res.Seconds = el.Seconds()
	if el > 0 {
		res.Rate = float64(res.Events) / el.Seconds()
	}
	res.Consumed, res.Applied = c1.consumed-c0.consumed, c1.applied-c0.applied
	res.DeadLettered, res.Duplicates, res.Emitted = c1.dead-c0.dead, c1.dups-c0.dups, c1.emitted-c0.emitted
	res.Flushes, res.FlushUsers, res.FlushCmds = c1.flushes-c0.flushes, c1.flushUsers-c0.flushUsers, c1.cmds-c0.cmds
	res.Loads = c1.loads - c0.loads
	res.RoundTrips = res.Flushes + res.Loads
	res.FlushSeconds = time.Duration(c1.flushNanos - c0.flushNanos).Seconds()
	if spec.AllocProfile != "" {
		if err := writeProfile("allocs", spec.AllocProfile); err != nil {
			return nil, err
		}
	}
	stop()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return res, nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// waitDurable waits until every one of spec.Expect records is durable: all
// applied events were flushed (seen by the stage) and every partition's
// checkpoint in Redis is at its end offset. It returns the time of the last
// flush.
func waitDurable(ctx context.Context, spec *ingestSpec, in *app.Ingester, stage *latencyStage) (time.Time, error) {
	st := in.Topology().Stats()
	store := in.Store()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		durable, last := stage.snapshot()
		skipped := st.Consumed.Load() - st.Applied.Load()
		if durable+skipped < spec.Expect {
			continue
		}
		covered := true
		for p, end := range spec.Ends {
			cp, err := store.LoadCheckpoint(ctx, spec.Topic, p)
			if err != nil {
				return time.Time{}, err
			}
			if cp.Next < end {
				covered = false
				break
			}
		}
		if covered {
			if _, last2 := stage.snapshot(); last2.After(last) {
				last = last2
			}
			return last, nil
		}
	}
}
