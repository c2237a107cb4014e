package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// ResultVersion is the version of the results.json format.
const ResultVersion = 1

// Result is one benchmark run: what results.json holds.
type Result struct {
	Version  int            `json:"version"`
	Started  time.Time      `json:"started"`
	Seconds  float64        `json:"seconds"`
	Command  string         `json:"command,omitempty"`
	Quick    bool           `json:"quick"`
	Machine  Machine        `json:"machine"`
	Setup    Setup          `json:"setup"`
	Scales   []Scale        `json:"scales"`
	Trainer  *TrainerResult `json:"trainer,omitempty"`
	Targets  []Target       `json:"targets"`
	Profiles []Profile      `json:"profiles,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
}

// Machine describes the host.
type Machine struct {
	NumCPU       int    `json:"num_cpu"`
	CPUModel     string `json:"cpu_model"`
	MemoryBytes  int64  `json:"memory_bytes"`
	OS           string `json:"os"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version"`
	LoadAverage  string `json:"load_average_at_start"`
}

// Setup describes how the run was arranged.
type Setup struct {
	Ingester      string `json:"ingester"`
	LoadGenerator string `json:"load_generator"`
	IngestCPUs    string `json:"ingest_cpus"`
	LoadCPUs      string `json:"load_cpus"`
	// Scorer describes the score role of the latency runs ("" when left
	// out); ScoreCPUs the CPUs it was pinned to.
	Scorer           string  `json:"scorer,omitempty"`
	ScoreCPUs        string  `json:"score_cpus,omitempty"`
	ScoreGOMAXPROCS  int     `json:"score_gomaxprocs,omitempty"`
	Nice             int     `json:"nice"`
	IngestGOMAXPROCS int     `json:"ingest_gomaxprocs"`
	LoadGOMAXPROCS   int     `json:"load_gomaxprocs"`
	Partitions       int     `json:"partitions"`
	FlushEvents      int     `json:"flush_events"`
	FlushIntervalMs  float64 `json:"flush_interval_ms"`
	MaxBatch         int     `json:"max_batch"`
	CacheUsers       int     `json:"cache_users"`
	TTL              string  `json:"ttl"`
	Trigger          string  `json:"trigger"`
	Dataset          string  `json:"dataset"`
	// SampleRepricedItems is the number of items the sample shows at more
	// than one price (Sample.RepricedItems): 0 means the score role's
	// price_drop trigger cannot fire.
	SampleRepricedItems int `json:"sample_repriced_items"`
}

// Scale holds every figure measured at one number of distinct users.
type Scale struct {
	Users          int        `json:"users"`
	Copies         int        `json:"copies"`
	EventsPerRound int        `json:"events_per_round"`
	Preload        RateFigure `json:"preload"`
	ConsumeFloor   RateFigure `json:"consume_floor"`
	RedisFloor     RedisFloor `json:"redis_floor"`
	Max            MaxRun     `json:"max"`
	// ScoreMax is the score role (its own process on Setup.ScoreCPUs, as
	// in the latency runs) scoring the maximum-speed runs' snapshot topic
	// at full speed; nil without the score role. ScoreMaxEventsPerSec is
	// its rate in events/s (snapshots/s × events per emitted snapshot).
	ScoreMax             *ScoreRun `json:"score_max,omitempty"`
	ScoreMaxEventsPerSec float64   `json:"score_max_events_per_sec,omitempty"`
	// EndToEndMaxPerSec is min(Max.MedianEventsPerSec,
	// ScoreMaxEventsPerSec), or Max.MedianEventsPerSec without the score
	// role: the latency runs' 100 %, which LoadBasis names.
	EndToEndMaxPerSec float64   `json:"end_to_end_max_per_sec"`
	LoadBasis         string    `json:"load_basis"`
	Loads             []LoadRun `json:"loads"`
	Profiled          *MaxRun   `json:"profiled,omitempty"`
	// Before is the maximum-speed run with snapshots encoded by
	// encoding/json, as before features.Snapshot.Encode was rewritten.
	Before     *MaxRun  `json:"before_snapshot_encoder_fix,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
	StateBytes float64  `json:"state_bytes_avg"`
	// Bounded is the maximum-speed run repeated with a small cache and a
	// short TTL (last scale, when configured).
	Bounded *BoundedRun `json:"bounded,omitempty"`
	Keys    int64       `json:"redis_keys"`
	Memory  MemoryTrace `json:"memory"`
}

// MemoryTrace relates state size to users: what the ingester and Redis hold
// after the maximum-speed run.
type MemoryTrace struct {
	PeakRSSBytes         int64   `json:"peak_rss_bytes"`
	HeapInuseBytes       uint64  `json:"heap_inuse_bytes"`
	CacheBoundUsers      int     `json:"cache_bound_users"` // CacheUsers × partitions
	RedisUsedMemoryBytes int64   `json:"redis_used_memory_bytes"`
	RedisBytesPer100k    float64 `json:"redis_bytes_per_100k_users"`
}

// BoundedRun shows state bounded by active users: the ingester's memory by
// its cache, Redis's by the TTL (shorter than the run).
type BoundedRun struct {
	CacheUsers      int     `json:"cache_users"`
	TTL             string  `json:"ttl"`
	CacheBoundUsers int     `json:"cache_bound_users"`
	EventsPerSec    float64 `json:"events_per_sec"`
	Seconds         float64 `json:"seconds"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
	HeapInuseBytes  uint64  `json:"heap_inuse_bytes"`
	// RedisKeysAtEnd are the user keys right after the run: the users
	// written in the last TTL (the others had expired);
	// RedisUsedMemoryBytes is used_memory then, against before the run.
	RedisKeysAtEnd       int64 `json:"redis_keys_at_end"`
	RedisUsedMemoryBytes int64 `json:"redis_used_memory_bytes"`
	// Waited is how long after the run (its last write) the user keys and
	// used_memory were read again, with no event meanwhile: the TTL plus a
	// margin ("": not read again). RedisKeysAfterTTL should then be 0.
	Waited                       string  `json:"waited,omitempty"`
	RedisKeysAfterTTL            int64   `json:"redis_keys_after_ttl"`
	RedisUsedMemoryAfterTTLBytes int64   `json:"redis_used_memory_after_ttl_bytes"`
	Max                          *MaxRun `json:"max"`
}

// RateFigure is a rate measured over a window.
type RateFigure struct {
	Events               int64     `json:"events"`
	Seconds              float64   `json:"seconds"`
	EventsPerSec         float64   `json:"events_per_sec"`
	CPUSecondsPerMillion float64   `json:"cpu_seconds_per_million"`
	Proc                 ProcStats `json:"proc"`
	// Runs are the rates of every repeat; the figure is the fastest.
	Runs []float64 `json:"runs,omitempty"`
}

// RedisFloor is the raw pipelined-write rate of Redis.
type RedisFloor struct {
	Depth            int       `json:"depth"`
	Concurrency      int       `json:"concurrency"`
	PayloadBytes     int       `json:"payload_bytes"`
	UserWritesPerSec float64   `json:"user_writes_per_sec"`
	CommandsPerSec   float64   `json:"commands_per_sec"`
	PipelinesPerSec  float64   `json:"pipelines_per_sec"`
	EventsPerSecEq   float64   `json:"events_per_sec_equivalent"`
	Proc             ProcStats `json:"proc"`
}

// MaxRun is the real pipeline draining a pre-loaded topic.
type MaxRun struct {
	Events       int64   `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	RatioToFloor float64 `json:"ratio_to_consume_floor"`
	// CPURatioToFloor is the floor's CPU time per event over the
	// pipeline's: the ratio of their rates were both CPU-bound on the same
	// CPU, whatever else ran on it.
	CPURatioToFloor float64 `json:"cpu_ratio_to_consume_floor"`
	// Runs are the rates of every repeat; the figures are the fastest's.
	// MedianEventsPerSec is their median: the load runs' 100 %.
	Runs                   []float64 `json:"runs,omitempty"`
	MedianEventsPerSec     float64   `json:"median_events_per_sec"`
	RatioToRedisFloor      float64   `json:"ratio_to_redis_floor"`
	RoundTripsPerEvent     float64   `json:"round_trips_per_event"`
	ClientCommandsPerEvent float64   `json:"client_commands_per_event"`
	ScriptCommandsPerEvent float64   `json:"script_commands_per_event"`
	EventsPerFlush         float64   `json:"events_per_flush"`
	UsersPerFlush          float64   `json:"users_per_flush"`
	FlushMsAvg             float64   `json:"flush_ms_avg"`
	CPUSecondsPerMillion   float64   `json:"cpu_seconds_per_million"`
	CPUUtilisation         float64   `json:"cpu_utilisation"`
	// IngestCPUBusy is how busy the ingester's CPUs were over the window,
	// by any process; MachineBusy the same for all CPUs.
	IngestCPUBusy float64          `json:"ingest_cpu_busy"`
	MachineBusy   float64          `json:"machine_busy"`
	Commands      map[string]int64 `json:"redis_commands"`
	Ingest        ingestResult     `json:"ingest"`
}

// LoadRun is the pipeline at a fixed offered load.
type LoadRun struct {
	Fraction        float64 `json:"fraction"`
	OfferedPerSec   float64 `json:"offered_per_sec"`
	PublishedPerSec float64 `json:"published_per_sec"`
	IngestedPerSec  float64 `json:"ingested_per_sec"`
	Durable         Summary `json:"durable"`
	Processed       Summary `json:"processed"`
	Emit            Summary `json:"snapshot_emit"`
	// Change, Trigger and Output: event append → record timestamp of the
	// segment changes, of the retarget triggers, and of the first change
	// or trigger (once per event that caused any), for the events
	// appended in the window, matched by header scorer.HeaderSourceEvent.
	// Empty without the score role.
	Change  Summary `json:"segment_change"`
	Trigger Summary `json:"trigger"`
	Output  Summary `json:"change_or_trigger"`
	// WindowEvents are the events (snapshots) appended in the window;
	// EventsWithOutput those that caused a change or trigger.
	WindowEvents     int64 `json:"window_events"`
	EventsWithOutput int64 `json:"events_with_output"`
	// Outputs counts the output records (whole run, timers included).
	Outputs *OutputCounts `json:"outputs,omitempty"`
	// Score is the score role's report.
	Score *ScoreRun `json:"score,omitempty"`
	// RoundTripsPerEvent counts flushes and batch loads; LoadsPerEvent
	// the batch loads alone (pipeline.Stats.RedisLoads: one round trip per
	// fetched batch, loading its users not cached and checking all its
	// users for an erasure): 1 / events per batch.
	RoundTripsPerEvent   float64 `json:"round_trips_per_event"`
	LoadsPerEvent        float64 `json:"loads_per_event"`
	EventsPerFlush       float64 `json:"events_per_flush"`
	FlushMsAvg           float64 `json:"flush_ms_avg"`
	CPUSecondsPerMillion float64 `json:"cpu_seconds_per_million"`
	CPUUtilisation       float64 `json:"cpu_utilisation"`
	IngestCPUBusy        float64 `json:"ingest_cpu_busy"`
	MachineBusy          float64 `json:"machine_busy"`
	PeakRSSBytes         int64   `json:"peak_rss_bytes"`
	LoadGOMAXPROCS       int     `json:"load_gomaxprocs"`
	Warning              string  `json:"warning,omitempty"`
}

// Target is one stated target and whether the run met it.
type Target struct {
	Name  string  `json:"name"`
	Users int     `json:"users"`
	Want  string  `json:"want"`
	Got   float64 `json:"got"`
	Unit  string  `json:"unit"`
	Met   bool    `json:"met"`
	// Why explains a missed target from the run's figures.
	Why string `json:"why,omitempty"`
}

// Profile is a profiled re-run's output.
type Profile struct {
	Users  int         `json:"users"`
	CPU    string      `json:"cpu"`    // path relative to OutDir
	Allocs string      `json:"allocs"` // path relative to OutDir
	CPUTop []FuncShare `json:"cpu_top"`
	// AllocTop ranks functions by bytes allocated during the whole run.
	AllocTop []FuncShare `json:"alloc_top"`
	Areas    []FuncShare `json:"areas"`
}

// FuncShare is a function's (or area's) share of a profile.
type FuncShare struct {
	Func    string  `json:"func"`
	FlatPct float64 `json:"flat_pct"`
	CumPct  float64 `json:"cum_pct"`
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtUsers(n int) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dM", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dk", n/1e3)
	}
	return fmt.Sprint(n)
}

func fmtMs(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// WriteMarkdown renders the result's tables.
func (r *Result) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("Run of %s (%.0f s), %d CPUs (%s), %.1f GiB memory, %s; Redis %s.\n\n",
		r.Started.UTC().Format(time.RFC3339), r.Seconds, r.Machine.NumCPU, r.Machine.CPUModel,
		float64(r.Machine.MemoryBytes)/(1<<30), r.Machine.GoVersion, r.Machine.RedisVersion)
	p("Ingester: %s, CPUs %s (GOMAXPROCS %d). Load generator: %s, CPUs %s (GOMAXPROCS %d). Workers' nice %d. "+
		"%d partitions, flush %d events or %.0f ms. Load average at the start: %s.\n\n",
		r.Setup.Ingester, pinnedCPUs(r.Setup.IngestCPUs), r.Setup.IngestGOMAXPROCS, r.Setup.LoadGenerator,
		pinnedCPUs(r.Setup.LoadCPUs), r.Setup.LoadGOMAXPROCS, r.Setup.Nice, r.Setup.Partitions, r.Setup.FlushEvents,
		r.Setup.FlushIntervalMs, r.Machine.LoadAverage)

	p("### Throughput at maximum speed (pre-loaded topic)\n\n")
	p("| users | events | consume+decode floor ev/s | pipeline ev/s best (median) | ratio | ratio of CPU time per event | Redis floor ev/s eq. | round trips/event | client cmds/event | script cmds/event | events/flush | flush ms | CPU s per M events | ingester CPU use | its CPU busy (all processes) | peak RSS MiB | Redis MiB per 100k users |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Scales {
		m := s.Max
		p("| %s | %d | %s | %s (%s) | %.0f %% | %.0f %% | %s | %.4f | %.3f | %.3f | %.0f | %.1f | %.1f | %.0f %% | %.0f %% | %.0f | %.1f |\n",
			fmtUsers(s.Users), m.Events, fmtRate(s.ConsumeFloor.EventsPerSec), fmtRate(m.EventsPerSec),
			fmtRate(m.MedianEventsPerSec), 100*m.RatioToFloor, 100*m.CPURatioToFloor, fmtRate(s.RedisFloor.EventsPerSecEq), m.RoundTripsPerEvent, m.ClientCommandsPerEvent, m.ScriptCommandsPerEvent,
			m.EventsPerFlush, m.FlushMsAvg, m.CPUSecondsPerMillion, 100*m.CPUUtilisation, 100*m.IngestCPUBusy,
			mib(s.Memory.PeakRSSBytes), mib(int64(s.Memory.RedisBytesPer100k)))
	}
	if hasScoreMax(r) {
		p("\nScore role at maximum speed (app.Scorer, its own process on CPUs %s as in the latency runs, scoring the "+
			"maximum-speed run's snapshot topic from its start; one snapshot per event); the end-to-end maximum is the "+
			"smaller of the two roles' maxima.\n\n", pinnedCPUs(r.Setup.ScoreCPUs))
		p("| users | ingester ev/s (max, median) | score role ev/s (max) | snapshots scored | seconds | score CPU µs/snapshot | engine µs/snapshot | scorer CPU use | end-to-end max = min(ingester max, score max) ev/s |\n")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range r.Scales {
			if sm := s.ScoreMax; sm != nil {
				p("| %s | %s | %s | %d | %.1f | %.0f | %.0f | %.0f %% | %s |\n", fmtUsers(s.Users), fmtRate(s.Max.MedianEventsPerSec),
					fmtRate(s.ScoreMaxEventsPerSec), sm.Snapshots, sm.Seconds, sm.CPUSecondsPerMillion, sm.HandleMeanUs,
					100*sm.CPUUtilisation, fmtRate(s.EndToEndMaxPerSec))
			}
		}
	}
	for _, s := range r.Scales {
		if bf := s.Before; bf != nil {
			p("\nBefore/after the snapshot-encoding fix, same run, %s users (the before run encodes snapshots with encoding/json, "+
				"as the pipeline did): %s → %s events/s (%.0f %% → %.0f %% of the floor), %.1f → %.1f CPU s per M events "+
				"(%.0f %% → %.0f %% of the floor's CPU rate).\n",
				fmtUsers(s.Users), fmtRate(bf.EventsPerSec), fmtRate(s.Max.EventsPerSec), 100*bf.RatioToFloor,
				100*s.Max.RatioToFloor, bf.CPUSecondsPerMillion, s.Max.CPUSecondsPerMillion, 100*bf.CPURatioToFloor,
				100*s.Max.CPURatioToFloor)
		}
	}
	p("\n### Latency at fixed offered loads\n\n")
	p("Durable: Kafka record timestamp of the event → return of the flush that made it durable in Redis. ")
	p("Emit: the same → timestamp of its profile snapshot record. Change or trigger: %s. ", r.Setup.Trigger)
	p("Round trips/event counts the ingester's Redis round trips: one per flush and one per fetched batch (batch " +
		"loads, in brackets: the batch's users not cached are loaded and all its users checked for an erasure, in one " +
		"round trip, before it is applied). ")
	p("Offered loads are fractions of the end-to-end maximum when the score role is in the runs (the smaller of the " +
		"ingester's median maximum-speed rate and the score role's maximum), else of the ingester's median maximum-speed rate")
	for _, s := range r.Scales {
		if s.LoadBasis != "" {
			p("; %s users: %s", fmtUsers(s.Users), s.LoadBasis)
		}
	}
	p(".\n\n")
	p("| users | load | offered ev/s | ingested ev/s | durable p50 / p99 / p99.9 ms | of which before processing p50 / p99 | emit p50 / p99 / p99.9 ms | round trips/event (batch loads) | events/flush | flush ms | CPU s per M events | ingester CPU use | its CPU busy (all) | machine busy |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Scales {
		for _, l := range s.Loads {
			p("| %s | %.0f %% | %s | %s | %s / %s / %s | %s / %s | %s / %s / %s | %.3f (%.3f) | %.1f | %.1f | %.1f | %.0f %% | %.0f %% | %.0f %% |\n",
				fmtUsers(s.Users), 100*l.Fraction, fmtRate(l.OfferedPerSec), fmtRate(l.IngestedPerSec),
				fmtMs(l.Durable.P50Ms), fmtMs(l.Durable.P99Ms), fmtMs(l.Durable.P999Ms),
				fmtMs(l.Processed.P50Ms), fmtMs(l.Processed.P99Ms),
				fmtMs(l.Emit.P50Ms), fmtMs(l.Emit.P99Ms), fmtMs(l.Emit.P999Ms),
				l.RoundTripsPerEvent, l.LoadsPerEvent, l.EventsPerFlush, l.FlushMsAvg, l.CPUSecondsPerMillion,
				100*l.CPUUtilisation, 100*l.IngestCPUBusy, 100*l.MachineBusy)
		}
	}
	if r.Setup.Scorer != "" {
		p("\n#### Event → segment change or trigger (score role)\n\n")
		p("Score role: %s; CPUs %s (GOMAXPROCS %d). ", r.Setup.Scorer, pinnedCPUs(r.Setup.ScoreCPUs), r.Setup.ScoreGOMAXPROCS)
		p("Every change and trigger an event appended in the window caused is matched to it by the header `%s` "+
			"and measured from the event's append to the output record's timestamp; \"first\" is once per event "+
			"(its earliest output). Timers' outputs have no source event and are only counted.", "sp-source-event")
		if s := triggersNote(r); s != "" {
			p(" %s", s)
		}
		p("\n\n")
		p("| users | load | durable p50 / p99 / p99.9 ms | snapshot emit p50 / p99 / p99.9 ms | change or trigger (first) p50 / p99 / p99.9 ms | segment change p50 / p99 / p99.9 ms (n) | trigger p50 / p99 / p99.9 ms (n) | events with an output | outputs: changes / triggers / from timers | scorer CPU µs/snapshot | scorer CPU use | unscored at the end |\n")
		p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range r.Scales {
			for _, l := range s.Loads {
				sr := l.Score
				if sr == nil {
					continue
				}
				var oc OutputCounts
				if l.Outputs != nil {
					oc = *l.Outputs
				}
				p("| %s | %.0f %% | %s | %s | %s | %s (%d) | %s (%d) | %d of %d (%.1f %%) | %d / %d / %d | %.0f | %.0f %% | %d |\n",
					fmtUsers(s.Users), 100*l.Fraction, fmtQuantiles(l.Durable), fmtQuantiles(l.Emit), fmtQuantiles(l.Output),
					fmtQuantiles(l.Change), l.Change.Count, fmtQuantiles(l.Trigger), l.Trigger.Count,
					l.EventsWithOutput, l.WindowEvents, 100*ratio(float64(l.EventsWithOutput), float64(l.WindowEvents)),
					oc.ChangeRecords, oc.TriggerRecords, oc.FromTimers, sr.CPUSecondsPerMillion, 100*sr.CPUUtilisation, sr.Unscored)
			}
		}
	}
	p("\n### State against users\n\n")
	p("| users | Redis keys | state bytes (avg) | Redis used_memory MiB | per 100k users MiB | ingester peak RSS MiB | heap in use MiB | cache bound (users) |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Scales {
		p("| %s | %d | %.0f | %.1f | %.1f | %.0f | %.0f | %d |\n", fmtUsers(s.Users), s.Keys, s.StateBytes,
			mib(s.Memory.RedisUsedMemoryBytes), mib(int64(s.Memory.RedisBytesPer100k)), mib(s.Memory.PeakRSSBytes),
			mib(int64(s.Memory.HeapInuseBytes)), s.Memory.CacheBoundUsers)
	}
	for _, s := range r.Scales {
		if bd := s.Bounded; bd != nil {
			which := fmt.Sprintf("the users written in the last %s; the others had expired", bd.TTL)
			if bd.RedisKeysAtEnd >= int64(s.Users) {
				which = "every user: none had gone " + bd.TTL + " without a write"
			}
			p("\nThe same %s users with %d cached users per partition (%d in all) and a %s TTL: %s events/s for %.1f s, "+
				"ingester peak RSS %.0f MiB (heap %.0f MiB; %.0f MiB with the default cache of %d users). Redis at the end "+
				"of the run: %d user keys (%s), used_memory %+.1f MiB against before the run",
				fmtUsers(s.Users), bd.CacheUsers, bd.CacheBoundUsers, bd.TTL, fmtRate(bd.EventsPerSec), bd.Seconds,
				mib(bd.PeakRSSBytes), mib(int64(bd.HeapInuseBytes)), mib(s.Memory.PeakRSSBytes), s.Memory.CacheBoundUsers,
				bd.RedisKeysAtEnd, which, mib(bd.RedisUsedMemoryBytes))
			if bd.Waited != "" {
				p("; %s after the run, with no event meanwhile (the TTL plus a margin): %d user keys, used_memory %+.1f MiB",
					bd.Waited, bd.RedisKeysAfterTTL, mib(bd.RedisUsedMemoryAfterTTLBytes))
			}
			p(".\n")
		}
	}
	if t := r.Trainer; t != nil {
		p("\n### Trainer\n\n")
		p("Network: %d numeric features, %d token fields × %d buckets × %d dims, hidden %v, %d heads; trainer batch %d.\n\n",
			t.NumericFeatures, t.TokenFields, t.HashBuckets, t.EmbedDim, t.Hidden, t.Heads, t.ConfiguredBatch)
		p("| measurement | value |\n|---|---:|\n")
		for _, br := range t.Batches {
			p("| nn TrainBatch, batch %d | %s examples/s |\n", br.Batch, fmtRate(br.ExamplesPerSec))
		}
		p("| trainer.ProcessSnapshot end to end | %s snapshots/s (%s learnt/s) |\n", fmtRate(t.SnapshotsPerSec), fmtRate(t.LearntPerSec))
		p("| scoring (encode + predict) | %.2f µs/profile |\n", t.ScoreMicros)
	}
	p("\n### Targets\n\n| target | users | want | got | met | why (missed) |\n|---|---:|---|---:|:---:|---|\n")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		p("| %s | %s | %s | %s | %s | %s |\n", t.Name, fmtUsers(t.Users), t.Want,
			strings.TrimSpace(fmtFloat(t.Got)+" "+t.Unit), met, strings.ReplaceAll(t.Why, "|", "/"))
	}
	for _, pr := range r.Profiles {
		p("\n### Where the time goes (%s users, profiled re-run: `%s`, `%s`)\n\n", fmtUsers(pr.Users), pr.CPU, pr.Allocs)
		p("| area (cumulative CPU) | %% |\n|---|---:|\n")
		for _, a := range pr.Areas {
			p("| %s | %.1f |\n", a.Func, a.CumPct)
		}
		p("\n| function (top CPU, flat) | flat %% | cum %% |\n|---|---:|---:|\n")
		for _, f := range pr.CPUTop {
			p("| `%s` | %.1f | %.1f |\n", f.Func, f.FlatPct, f.CumPct)
		}
		p("\n| function (top allocated bytes, flat) | flat %% | cum %% |\n|---|---:|---:|\n")
		for _, f := range pr.AllocTop {
			p("| `%s` | %.1f | %.1f |\n", f.Func, f.FlatPct, f.CumPct)
		}
	}
	for _, s := range r.Scales {
		for _, w := range s.Warnings {
			p("\n- warning (%s users): %s", fmtUsers(s.Users), w)
		}
	}
	if len(r.Notes) > 0 {
		p("\n")
		for _, n := range r.Notes {
			p("\n- %s", n)
		}
		p("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// triggersNote says, when no latency run measured an event → trigger
// latency although the score role emitted triggers, why: the default
// triggers fire from timers, and price_drop needs a price the sample never
// shows. "" when some run measured one.
func triggersNote(r *Result) string {
	var records int64
	scored := false
	for _, s := range r.Scales {
		for _, l := range s.Loads {
			if l.Score == nil {
				continue
			}
			if l.Trigger.Count > 0 {
				return ""
			}
			scored = true
			if l.Outputs != nil {
				records += l.Outputs.TriggerRecords
			}
		}
	}
	if !scored {
		return ""
	}
	return fmt.Sprintf("**The trigger column measures nothing here:** no event of any window caused a trigger (of the %d "+
		"trigger records counted, none named a source event). With %s. \"Change or trigger (first)\" is therefore "+
		"event → segment change.", records, timerTriggers(r))
}

// hasScoreMax says whether a scale measured the score role's maximum.
func hasScoreMax(r *Result) bool {
	for _, s := range r.Scales {
		if s.ScoreMax != nil {
			return true
		}
	}
	return false
}

func fmtQuantiles(s Summary) string {
	if s.Count == 0 {
		return "–"
	}
	return fmtMs(s.P50Ms) + " / " + fmtMs(s.P99Ms) + " / " + fmtMs(s.P999Ms)
}

func fmtFloat(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.4f", v)
}

// pinnedCPUs is a process's CPU list, or "not pinned".
func pinnedCPUs(cpus string) string { return orElse(cpus, "not pinned") }
