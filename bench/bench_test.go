package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/stream"
)

// envWorker makes the test binary a benchmark worker (see TestMain), so the
// smoke run can start workers without the streamprofile binary.
const envWorker = "STREAMPROFILE_BENCH_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(envWorker) == "1" {
		if err := RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func loadSample(t testing.TB) *Sample {
	t.Helper()
	s, err := LoadSample()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSampleIsTheBundledREES46Head(t *testing.T) {
	s := loadSample(t)
	if s.Events() != 17434 || s.Users() != 4504 {
		t.Fatalf("sample has %d events of %d users, want 17434 of 4504 (data/README.md)", s.Events(), s.Users())
	}
}

// TestSampleRepricedItems: the bundled sample shows every item at one
// price, so the score role's price_drop trigger cannot fire on it (the
// report says so); an item seen at two prices counts once.
func TestSampleRepricedItems(t *testing.T) {
	if n := loadSample(t).RepricedItems(); n != 0 {
		t.Fatalf("the bundled sample shows %d items at more than one price; the report's trigger note says none", n)
	}
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(item string, micros int64) stream.Event {
		return stream.Event{Schema: 1, EventID: item, Type: stream.TypeView, UserID: "u", TS: at, ItemID: item, PriceMicros: micros}
	}
	s, err := NewSample([]stream.Event{ev("a", 2e6), ev("a", 2e6), ev("b", 3e6), ev("b", 1e6), ev("b", 2e6), ev("c", 0), ev("c", 5e6)})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.RepricedItems(); n != 1 {
		t.Fatalf("RepricedItems = %d, want 1 (b)", n)
	}
}

// TestRekey checks the re-keying's specification on whole rounds: exactly
// the requested distinct users, each with its events in the original
// order, the stream in event-time order (nothing late), unique event ids
// across rounds, and the same stream on every call.
func TestRekey(t *testing.T) {
	s := loadSample(t)
	for _, users := range []int{1, 100, 4504, 4505, 10000} {
		t.Run(fmt.Sprint(users), func(t *testing.T) {
			r, err := s.Rekey(users, 0)
			if err != nil {
				t.Fatal(err)
			}
			if want := (users + 4503) / 4504; r.Copies() != want {
				t.Fatalf("copies %d, want %d", r.Copies(), want)
			}
			again, _ := s.Rekey(users, 0)
			seen := map[string]bool{}
			perUser := map[string][]stream.Event{}
			var last time.Time
			for round := range 2 {
				for i := range r.PerRound() {
					if r.Round() != round {
						t.Fatalf("event %d of round %d reports round %d", i, round, r.Round())
					}
					ev := r.Next()
					if ev2 := again.Next(); ev2.EventID != ev.EventID || ev2.UserID != ev.UserID || !ev2.TS.Equal(ev.TS) {
						t.Fatalf("not deterministic: %+v vs %+v", ev, ev2)
					}
					if ev.TS.Before(last) {
						t.Fatalf("event %s at %s is before the previous event (%s)", ev.EventID, ev.TS, last)
					}
					last = ev.TS
					if seen[ev.EventID] {
						t.Fatalf("event id %s repeated", ev.EventID)
					}
					seen[ev.EventID] = true
					if round == 0 {
						perUser[ev.UserID] = append(perUser[ev.UserID], ev)
					}
					if _, err := stream.Encode(&ev); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(perUser) != users {
				t.Fatalf("%d distinct users, want %d", len(perUser), users)
			}
			// Each synthetic user's events are its original user's, in
			// order, shifted by the same amount.
			orig := map[string][]stream.Event{}
			for _, ev := range s.events {
				orig[ev.UserID] = append(orig[ev.UserID], ev)
			}
			for u, evs := range perUser {
				base, _, ok := strings.Cut(u, "-")
				if !ok {
					t.Fatalf("synthetic user %q has no copy suffix", u)
				}
				o := orig[base]
				if len(o) != len(evs) {
					t.Fatalf("user %s has %d events, its original %d", u, len(evs), len(o))
				}
				shift := evs[0].TS.Sub(o[0].TS)
				for i := range evs {
					if evs[i].TS.Sub(o[i].TS) != shift || evs[i].Type != o[i].Type || evs[i].ItemID != o[i].ItemID {
						t.Fatalf("user %s event %d is not its original's, shifted by %s", u, i, shift)
					}
				}
			}
		})
	}
}

func TestNewSampleRejects(t *testing.T) {
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(id string, ts time.Time) stream.Event {
		return stream.Event{Schema: 1, EventID: id, Type: stream.TypeView, UserID: "u", TS: ts, ItemID: "i"}
	}
	cases := map[string][]stream.Event{
		"empty":        nil,
		"out of order": {ev("a", at), ev("b", at.Add(-time.Second))},
		"too long":     {ev("a", at), ev("b", at.Add(CopyShift))},
	}
	for name, evs := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := NewSample(evs); !errors.Is(err, ErrSample) {
				t.Fatalf("NewSample: %v, want ErrSample", err)
			}
		})
	}
	s, err := NewSample([]stream.Event{ev("a", at)})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]int{{0, 0}, {-1, 0}, {1, -1}} {
		if _, err := s.Rekey(bad[0], bad[1]); !errors.Is(err, ErrSample) {
			t.Fatalf("Rekey(%d, %d): %v, want ErrSample", bad[0], bad[1], err)
		}
	}
}

// TestHistogramQuantiles: every quantile is within the bucket precision of
// the exact order statistic, on several distributions.
func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 0-50ms":  func() time.Duration { return time.Duration(r.Int64N(int64(50 * time.Millisecond))) },
		"exponential 5ms": func() time.Duration { return time.Duration(r.ExpFloat64() * float64(5*time.Millisecond)) },
		"bimodal 1ms/1s": func() time.Duration {
			return []time.Duration{time.Millisecond, time.Second}[r.IntN(2)] + time.Duration(r.IntN(1000))
		},
		"sub-microsecond":  func() time.Duration { return time.Duration(r.IntN(1000)) },
		"heavy tail (1/x)": func() time.Duration { return time.Duration(float64(time.Millisecond) / (r.Float64() + 1e-4)) },
	}
	for name, draw := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			xs := make([]time.Duration, 20000)
			for i := range xs {
				xs[i] = draw()
				h.Observe(xs[i])
			}
			slices.Sort(xs)
			for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
				exact := xs[max(0, int(math.Ceil(q*float64(len(xs))))-1)]
				got := h.Quantile(q)
				tol := max(float64(exact)*0.012, float64(time.Microsecond))
				if math.Abs(float64(got-exact)) > tol {
					t.Fatalf("q%g: got %s, exact %s", q, got, exact)
				}
			}
			if h.N != uint64(len(xs)) || time.Duration(h.MaxNs) != xs[len(xs)-1] {
				t.Fatalf("count %d max %s", h.N, time.Duration(h.MaxNs))
			}
		})
	}
}

func TestHistogramMergeEqualsObservingAll(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 5000 {
		d := time.Duration(r.Int64N(int64(time.Second)))
		all.Observe(d)
		if i%3 == 0 {
			a.Observe(d)
		} else {
			b.Observe(d)
		}
	}
	a.Merge(&b)
	ja, _ := json.Marshal(a)
	jall, _ := json.Marshal(all)
	if string(ja) != string(jall) {
		t.Fatal("merged histogram differs from the one that observed everything")
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Summary().Count != 0 {
		t.Fatal("empty histogram is not zero")
	}
}

// spin burns CPU in a function the profile test looks for.
//
//go:noinline
func spin(d time.Duration) float64 {
	x := 0.0
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 10000 {
			x += math.Sqrt(float64(i))
		}
	}
	return x
}

var sink []byte

//go:noinline
func allocate(n int) {
	for range n {
		sink = make([]byte, 64<<10)
	}
}

func TestProfileSummaries(t *testing.T) {
	dir := t.TempDir()
	cpuPath, allocPath := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "allocs.pprof")
	f, err := os.Create(cpuPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Skipf("CPU profiling unavailable: %v", err) // another profile is running (go test -cpuprofile)
	}
	spin(300 * time.Millisecond)
	pprof.StopCPUProfile()
	f.Close()
	allocate(4000) // 256 MiB: more than the rest of the test binary allocates
	if err := writeProfile("allocs", allocPath); err != nil {
		t.Fatal(err)
	}
	p, err := summarizeProfiles(dir, cpuPath, allocPath)
	if err != nil {
		t.Fatal(err)
	}
	if p.CPU != "cpu.pprof" || p.Allocs != "allocs.pprof" {
		t.Fatalf("paths not relative to the output directory: %q %q", p.CPU, p.Allocs)
	}
	find := func(list []FuncShare, name string) *FuncShare {
		for i := range list {
			if strings.HasSuffix(list[i].Func, name) {
				return &list[i]
			}
		}
		return nil
	}
	// The loop dominates the CPU profile (the machine may be shared: be
	// lenient on the share, strict on the ranking).
	if fs := find(p.CPUTop, "bench.spin"); fs == nil || fs.CumPct < 50 || p.CPUTop[0].Func != fs.Func {
		t.Fatalf("bench.spin is not the top CPU function: %+v", p.CPUTop)
	}
	if fs := find(p.AllocTop, "bench.allocate"); fs == nil || fs.FlatPct < 5 {
		t.Fatalf("bench.allocate not among the top allocators: %+v", p.AllocTop)
	}
	if len(p.Areas) != len(profileAreas) {
		t.Fatalf("%d areas", len(p.Areas))
	}
	if !sort.SliceIsSorted(p.CPUTop, func(i, j int) bool { return p.CPUTop[i].FlatPct > p.CPUTop[j].FlatPct }) {
		t.Fatal("top list is not sorted by flat share")
	}
}

func FuzzReadPprof(f *testing.F) {
	var buf strings.Builder
	allocate(1)
	_ = pprof.Lookup("allocs").WriteTo(&buf, 0)
	f.Add([]byte(buf.String()))
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := readPprof(b)
		if err != nil {
			return
		}
		// Whatever parses can be ranked without panicking.
		_, _ = p.top("alloc_space", 5)
		_ = p.areas("cpu")
	})
}

func TestSnapshotAppended(t *testing.T) {
	at := time.Date(2024, 2, 3, 4, 5, 6, 789000000, time.UTC)
	s := features.Snapshot{Version: 1, ID: "e", User: "u", TS: at, Type: "view", Features: map[string]float64{"x": 1},
		Source: features.SnapshotSource{Topic: "t", Appended: at}}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := snapshotAppended(b)
	if !ok || !got.Equal(at) {
		t.Fatalf("snapshotAppended = %s, %v; want %s", got, ok, at)
	}
	for _, bad := range []string{"", `{"appended":"`, `{"appended":"yesterday"}`} {
		if _, ok := snapshotAppended([]byte(bad)); ok {
			t.Fatalf("%q parsed", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Brokers: []string{"k:9092"}, Redis: "r:6379", OutDir: "out", WorkerCommand: []string{"w"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(c *Config){
		"no brokers":     func(c *Config) { c.Brokers = nil },
		"no redis":       func(c *Config) { c.Redis = "" },
		"no out dir":     func(c *Config) { c.OutDir = "" },
		"no worker":      func(c *Config) { c.WorkerCommand = nil },
		"negative db":    func(c *Config) { c.RedisDB = -1 },
		"zero users":     func(c *Config) { c.Users = []int{10, 0} },
		"load above 1":   func(c *Config) { c.Loads = []float64{1.5} },
		"load zero":      func(c *Config) { c.Loads = []float64{0} },
		"bad profile":    func(c *Config) { c.Profile = "sometimes" },
		"trainer batch0": func(c *Config) { c.TrainerBatches = []int{0} },
		"bounded ttl<0":  func(c *Config) { c.BoundedCacheUsers, c.BoundedTTL = 10, -time.Second },
		"bounded ttl":    func(c *Config) { c.BoundedCacheUsers, c.BoundedTTL = 10, time.Hour },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			c := good
			edit(&c)
			if err := c.Validate(); !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate: %v, want ErrConfig", err)
			}
		})
	}
	d := Config{Quick: true}.WithDefaults()
	if !slices.Equal(d.Users, []int{2000}) || !slices.Equal(d.Loads, []float64{0.5}) || d.LatencyWindow != 3*time.Second {
		t.Fatalf("quick defaults: %+v", d)
	}
	d = Config{}.WithDefaults()
	if !slices.Equal(d.Users, []int{10000, 100000, 1000000}) || d.Partitions != 6 || d.Profile != ProfileAuto ||
		d.BoundedTTL != 10*time.Second {
		t.Fatalf("defaults: %+v", d)
	}
}

// TestTargetsAndOutput: targets are judged against the stated ratios, and
// the tables and plots are written for a result.
func TestTargetsAndOutput(t *testing.T) {
	r := &Result{Setup: Setup{FlushIntervalMs: 20, Scorer: "separate process", ScoreCPUs: "1", IngestCPUs: "1"}, Scales: []Scale{{
		Users: 10000, ConsumeFloor: RateFigure{EventsPerSec: 100000},
		Memory: MemoryTrace{PeakRSSBytes: 100 << 20, RedisUsedMemoryBytes: 7 << 20, CacheBoundUsers: 600000},
		Bounded: &BoundedRun{CacheUsers: 1000, CacheBoundUsers: 6000, TTL: "10s", EventsPerSec: 50000, Seconds: 40,
			PeakRSSBytes: 60 << 20, RedisKeysAtEnd: 4000, RedisUsedMemoryBytes: 3 << 20, Waited: "11s",
			RedisUsedMemoryAfterTTLBytes: 1 << 20},
		Max:                  MaxRun{Events: 38000, EventsPerSec: 60000, RatioToFloor: 0.6, CPURatioToFloor: 0.55, MedianEventsPerSec: 58000, RoundTripsPerEvent: 0.004},
		ScoreMax:             &ScoreRun{Snapshots: 38000, Seconds: 0.5, SnapshotsPerSec: 76000, CPUSecondsPerMillion: 13, HandleMeanUs: 9, CPUUtilisation: 0.99},
		ScoreMaxEventsPerSec: 76000, EndToEndMaxPerSec: 58000, LoadBasis: "the end-to-end maximum, min(ingester 58.0k, score role 76.0k) = 58.0k events/s",
		Loads: []LoadRun{
			{Fraction: 0.5, OfferedPerSec: 30000, IngestedPerSec: 30000, RoundTripsPerEvent: 0.3,
				Durable: Summary{Count: 10, P50Ms: 12, P99Ms: 19, P999Ms: 30}, Emit: Summary{Count: 10, P50Ms: 10, P99Ms: 30, P999Ms: 40},
				Output: Summary{Count: 4, P50Ms: 25, P99Ms: 60, P999Ms: 70}, Change: Summary{Count: 5, P50Ms: 25, P99Ms: 60, P999Ms: 70},
				WindowEvents: 10, EventsWithOutput: 4, Outputs: &OutputCounts{ChangeRecords: 5, TriggerRecords: 3, FromTimers: 4},
				LoadsPerEvent: 0.25, EventsPerFlush: 4,
				Score: &ScoreRun{Snapshots: 10, Records: 10, CPUSecondsPerMillion: 40, HandleMeanUs: 20}},
			{Fraction: 0.8, OfferedPerSec: 48000, IngestedPerSec: 47000, RoundTripsPerEvent: 0.1,
				Durable: Summary{Count: 10, P50Ms: 15, P99Ms: 25, P999Ms: 40}, Emit: Summary{Count: 10, P50Ms: 12, P99Ms: 30, P999Ms: 45}},
		},
	}}}
	want := map[string]bool{
		"pipeline ev/s ÷ consume+decode floor":                                          true,
		"the same, by CPU time per event (both CPU-bound)":                              true,
		"Redis round trips per event, maximum speed":                                    true,
		"Redis round trips per event, 50 % load":                                        false,
		"p99 event → durable in Redis, 50 % load":                                       true,
		"p99 event → segment change (score role; no event caused a trigger), 50 % load": false,
		"memory follows active users":                                                   true,
		"Redis round trips per event, 80 % load":                                        true,
		"p99 event → durable in Redis, 80 % load":                                       false,
	}
	got := targets(r)
	if len(got) != len(want) {
		t.Fatalf("%d targets, want %d: %+v", len(got), len(want), got)
	}
	for _, tg := range got {
		if met, ok := want[tg.Name]; !ok || met != tg.Met {
			t.Fatalf("target %q met=%v, want %v (known: %v)", tg.Name, tg.Met, met, ok)
		}
	}
	for _, tg := range got {
		// A missed target says why; a met one needs no reason.
		if tg.Met != (tg.Why == "") {
			t.Fatalf("target %q met=%v with reason %q", tg.Name, tg.Met, tg.Why)
		}
	}
	// Keys left once the TTL has passed, or an RSS not below the default
	// cache's, miss the memory target, with the figures.
	for _, edit := range []func(bd *BoundedRun){
		func(bd *BoundedRun) { bd.RedisKeysAfterTTL = 12 },
		func(bd *BoundedRun) { bd.PeakRSSBytes = 200 << 20 },
		func(bd *BoundedRun) { bd.Waited = "" },
	} {
		sc := r.Scales[0]
		bd := *sc.Bounded
		edit(&bd)
		if tg := memoryTarget(&sc, &bd); tg.Met || !strings.Contains(tg.Why, "4000 of 10000 user keys at the end of the run") {
			t.Fatalf("memory target with %+v: %+v", bd, tg)
		}
	}
	r.Targets = got
	var md strings.Builder
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| 10k | 38000 | 100.0k | 60.0k (58.0k) | 60 % | 55 % |", "1000 cached users per partition (6000 in all) and a 10s TTL",
		"| 10k | 50 % | 30.0k | 30.0k | 12.0 / 19.0 / 30.0 |", "**no**",
		"| 10k | 50 % | 12.0 / 19.0 / 30.0 | 10.0 / 30.0 / 40.0 | 25.0 / 60.0 / 70.0 | 25.0 / 60.0 / 70.0 (5) | – (0) | 4 of 10 (40.0 %) | 5 / 3 / 4 | 40 |",
		"**The trigger column measures nothing here:** no event of any window caused a trigger (of the 3 trigger records",
		"the sample shows every item at one price", "is therefore event → segment change",
		"4000 user keys (the users written in the last 10s; the others had expired), used_memory +3.0 MiB",
		"11s after the run, with no event meanwhile (the TTL plus a margin): 0 user keys, used_memory +1.0 MiB",
		"60 MiB (heap 0 MiB; 100 MiB with the default cache of 600000 users)",
		"a flush (one round trip) carries 4.0 events and a fetched batch 4.0: every batch costs a round trip of its own",
		"snapshot emit p99 30.0 ms, so the score role added about 30.0 ms at p99",
		"| 10k | 58.0k | 76.0k | 38000 | 0.5 | 13 | 9 | 99 % | 58.0k |",
		"10k users: the end-to-end maximum, min(ingester 58.0k, score role 76.0k) = 58.0k events/s",
		"offered 30.0k events/s, 50 % of the end-to-end maximum"} {
		if !strings.Contains(md.String(), s) {
			t.Fatalf("markdown lacks %q:\n%s", s, md.String())
		}
	}
	// The report: dated, with the command, the machine, the placement, the
	// re-keying, the plots by relative path and every table.
	r.Started, r.Command = time.Date(2026, 12, 5, 9, 30, 0, 0, time.UTC), "streamprofile bench --out docs/bench"
	r.Machine = Machine{NumCPU: 2, CPUModel: "AMD EPYC", MemoryBytes: 8 << 30}
	var doc strings.Builder
	if err := r.WriteDocument(&doc, "docs/bench"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"**Run of 2026-12-05 09:30 UTC**", "scripts/bench.sh", "streamprofile bench --out docs/bench",
		"| CPUs | 2 × AMD EPYC |", "## Data: re-keying to the user counts", "](docs/bench/latency.png)",
		"### Targets", "| 10k | 50 % | 12.0 / 19.0 / 30.0 | 10.0 / 30.0 / 40.0 |"} {
		if !strings.Contains(doc.String(), s) {
			t.Fatalf("document lacks %q:\n%s", s, doc.String())
		}
	}
	dir := t.TempDir()
	if err := WritePlots(r, dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PlotThroughput, PlotLatency, PlotScaling} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 500 {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// TestQuickRun is the harness's smoke run on the real services: a tiny
// load through every phase (pre-load, floors, maximum speed with the
// before/after comparison and profiles, one latency run, trainer), checked
// for coherent figures.
func TestQuickRun(t *testing.T) {
	brokers := testenv.Kafka(t)
	rdb := testenv.RedisDB(t)
	out := t.TempDir()
	const users = 1000
	progressLog := &testWriter{t: t}
	cfg := Config{
		Brokers: brokers, Redis: rdb.Options().Addr, RedisDB: rdb.Options().DB, OutDir: out,
		Quick: true, Users: []int{users}, Partitions: 3,
		LatencyWindow: 1500 * time.Millisecond, LatencyWarmup: 500 * time.Millisecond,
		RedisFloorWindow: 300 * time.Millisecond, TrainerWindow: 100 * time.Millisecond, TrainerBatches: []int{32},
		Profile: ProfileAlways, CompareSnapshotJSON: true, PhaseTimeout: 2 * time.Minute,
		BoundedCacheUsers: 50, BoundedTTL: 2 * time.Second,
		WorkerCommand: []string{os.Args[0]}, WorkerEnv: []string{envWorker + "=1"},
		Progress: progressLog,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Scales) != 1 || back.Trainer == nil || len(back.Targets) == 0 || len(back.Profiles) != 1 {
		t.Fatalf("results.json incomplete: %d scales, trainer %v, %d targets, %d profiles",
			len(back.Scales), back.Trainer != nil, len(back.Targets), len(back.Profiles))
	}
	s := res.Scales[0]
	events := int64(s.EventsPerRound)
	switch {
	case s.Preload.Events != events || s.ConsumeFloor.Events != events || s.Max.Events != events:
		t.Fatalf("events: round %d, preloaded %d, floor %d, pipeline %d", events, s.Preload.Events, s.ConsumeFloor.Events, s.Max.Events)
	case s.Before == nil || s.Before.Events != events || s.Profiled == nil || s.Profiled.Events != events:
		t.Fatalf("before/profiled runs missing or incomplete: %+v %+v", s.Before, s.Profiled)
	case s.Keys != users:
		t.Fatalf("%d user keys in Redis, want %d", s.Keys, users)
	case !(s.Max.EventsPerSec > 0 && s.ConsumeFloor.EventsPerSec > 0 && s.RedisFloor.UserWritesPerSec > 0):
		t.Fatalf("rates: %+v %+v %+v", s.Max, s.ConsumeFloor, s.RedisFloor)
	case !(s.Max.RoundTripsPerEvent > 0 && s.Max.RoundTripsPerEvent < 1 && s.Max.ClientCommandsPerEvent > 0):
		t.Fatalf("Redis cost: %+v", s.Max)
	case s.Max.Commands["eval"] == 0 || s.Max.Commands["exec"] == 0:
		t.Fatalf("command stats: %v", s.Max.Commands)
	case !(s.Max.CPUSecondsPerMillion > 0 && s.Memory.PeakRSSBytes > 0 && s.Memory.RedisUsedMemoryBytes > 0):
		t.Fatalf("costs: %+v %+v", s.Max, s.Memory)
	case len(s.Loads) != 1 || s.Loads[0].Durable.Count == 0 || s.Loads[0].Emit.Count == 0:
		t.Fatalf("latency run: %+v", s.Loads)
	case s.Loads[0].Durable.P50Ms <= 0 || s.Loads[0].Durable.P99Ms < s.Loads[0].Durable.P50Ms:
		t.Fatalf("latency quantiles: %+v", s.Loads[0].Durable)
	case s.ScoreMax == nil || s.ScoreMax.Snapshots == 0 || s.ScoreMax.SnapshotsPerSec <= 0 || s.ScoreMax.CPUSecondsPerMillion <= 0 ||
		s.ScoreMax.ModelVersion == 0:
		t.Fatalf("score role maximum: %+v", s.ScoreMax)
	case s.EndToEndMaxPerSec != min(s.Max.MedianEventsPerSec, s.ScoreMaxEventsPerSec) ||
		s.Loads[0].OfferedPerSec != s.Loads[0].Fraction*s.EndToEndMaxPerSec:
		t.Fatalf("loads not fractions of the end-to-end maximum: ingester %g, score role %g, end to end %g, offered %g",
			s.Max.MedianEventsPerSec, s.ScoreMaxEventsPerSec, s.EndToEndMaxPerSec, s.Loads[0].OfferedPerSec)
	case s.Loads[0].Score == nil || s.Loads[0].Score.Snapshots == 0 || s.Loads[0].Score.Unscored != 0 || s.Loads[0].Score.ModelVersion == 0:
		t.Fatalf("score role: %+v", s.Loads[0].Score)
	case s.Loads[0].Outputs == nil || s.Loads[0].Outputs.Unmatched != 0 || s.Loads[0].Outputs.ChangeRecords == 0:
		t.Fatalf("score outputs: %+v", s.Loads[0].Outputs)
	case s.Loads[0].EventsWithOutput == 0 || s.Loads[0].EventsWithOutput > s.Loads[0].WindowEvents ||
		s.Loads[0].Output.Count != uint64(s.Loads[0].EventsWithOutput) || s.Loads[0].Change.Count == 0:
		t.Fatalf("events → outputs: %d of %d events, %+v", s.Loads[0].EventsWithOutput, s.Loads[0].WindowEvents, s.Loads[0].Output)
	case s.Loads[0].Output.P50Ms < s.Loads[0].Emit.P50Ms || s.Loads[0].Output.P99Ms < s.Loads[0].Output.P50Ms:
		// A change follows its snapshot: it cannot come sooner.
		t.Fatalf("change or trigger %+v before the snapshot emit %+v", s.Loads[0].Output, s.Loads[0].Emit)
	case res.Trainer.ScoreMicros <= 0 || len(res.Trainer.Batches) != 1 || res.Trainer.SnapshotsPerSec <= 0:
		t.Fatalf("trainer: %+v", res.Trainer)
	case len(res.Profiles[0].CPUTop) == 0:
		t.Fatalf("profile: %+v", res.Profiles[0])
	case s.Bounded == nil || s.Bounded.Max == nil || s.Bounded.Max.Events != events || s.Bounded.CacheBoundUsers != 150 ||
		s.Bounded.Waited != (2*time.Second+time.Second).String():
		t.Fatalf("bounded run: %+v", s.Bounded)
	case s.Bounded.RedisKeysAtEnd <= 0 || s.Bounded.RedisKeysAtEnd > users || s.Bounded.RedisKeysAfterTTL != 0:
		// Every user was written in the run; none is left once the TTL
		// has passed with no event.
		t.Fatalf("bounded run: %d user keys at the end, %d after the TTL", s.Bounded.RedisKeysAtEnd, s.Bounded.RedisKeysAfterTTL)
	}
	// The memory target is judged (its RSS part on 1000 users means
	// little); the progress of the maximum-speed and latency runs was shown
	// (plain lines: the test log is no terminal).
	var memTarget bool
	for _, tg := range res.Targets {
		memTarget = memTarget || tg.Name == "memory follows active users"
	}
	log := progressLog.String()
	for _, want := range []string{
		fmt.Sprintf("bench: 1k users, max run: records consumed: %d done in", events),
		fmt.Sprintf("bench: 1k users, bounded run: records consumed: %d done in", events),
		"bench: 1k users, 50 % load: records consumed: ",
		"bench: 1k users, score role: snapshots handled: ",
	} {
		if !strings.Contains(log, want) {
			t.Fatalf("progress lacks %q:\n%s", want, log)
		}
	}
	if !memTarget {
		t.Fatalf("no memory target: %+v", res.Targets)
	}
	l := s.Loads[0]
	t.Logf("latency run: durable %+v, emit %+v, change or trigger %+v; %d of %d events caused outputs; outputs %+v; score %+v",
		l.Durable, l.Emit, l.Output, l.EventsWithOutput, l.WindowEvents, *l.Outputs, *l.Score)
	for _, name := range []string{"results.md", PlotThroughput, PlotLatency, PlotScaling, res.Profiles[0].CPU, res.Profiles[0].Allocs} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Everything the run created in Redis is gone again.
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("%d keys left in Redis (err %v)", n, err)
	}
}

// testWriter sends progress lines to the test log and keeps them.
type testWriter struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestParseCPUList(t *testing.T) {
	cases := map[string][]int{
		"": nil, "-": nil, "0": {0}, "1": {1}, "0-2": {0, 1, 2}, "0,2-3": {0, 2, 3}, "3-1": nil, "x": nil, "1-y": nil,
	}
	for in, want := range cases {
		if got := parseCPUList(in); !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBusy(t *testing.T) {
	a := cpuTimes{0: {100, 1000}, 1: {0, 1000}}
	b := cpuTimes{0: {200, 1100}, 1: {25, 1100}} // cpu0 fully busy, cpu1 a quarter
	for _, c := range []struct {
		cpus []int
		want float64
	}{{nil, 0.625}, {[]int{0}, 1}, {[]int{1}, 0.25}, {[]int{7}, 0}} {
		if got := busy(a, b, c.cpus); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("busy(%v) = %g, want %g", c.cpus, got, c.want)
		}
	}
	if now := readCPUTimes(); now != nil && len(now) == 0 {
		t.Error("/proc/stat lists no CPU")
	}
}
