package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
)

// backends returns every backend kind, each empty: a directory, a
// standalone Redis database and a Redis Cluster prefix.
func backends(t *testing.T) map[string]func(t *testing.T) registry.Backend {
	return map[string]func(t *testing.T) registry.Backend{
		"dir": func(t *testing.T) registry.Backend {
			b, err := registry.NewDirBackend(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"redis": func(t *testing.T) registry.Backend {
			b, err := registry.NewRedisBackend(registry.RedisBackendConfig{Client: testenv.RedisDB(t)})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"cluster": func(t *testing.T) registry.Backend {
			c, prefix := testenv.RedisClusterClient(t)
			b, err := registry.NewRedisBackend(registry.RedisBackendConfig{Client: c, Prefix: strings.TrimSuffix(prefix, ":")})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

var testArch = nn.Arch{NumericFeatures: []string{"views_total", "purchases_total", "activity_1h"}, HashBuckets: 32, Hidden: []int{4},
	Heads: []string{inputs.HeadPurchase, inputs.HeadRepeat}, BatchSize: 8}

// trainedModel returns a model trained a few steps from seed, so that
// different seeds give different scores.
func trainedModel(t testing.TB, seed uint64) *nn.Model {
	t.Helper()
	a := testArch
	a.Seed = seed
	net, err := nn.NewNetwork(a)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	exs := make([]nn.Example, 16)
	for i := range exs {
		exs[i] = nn.Example{Numeric: []float64{float64(i), float64(i % 3), float64(i) / 4},
			Tokens: map[string][]uint32{"category": {uint32(i % 32)}},
			Labels: []float64{float64(i % 2), 1}, Mask: []bool{true, i%4 == 0}}
	}
	if _, err := net.TrainBatch(exs); err != nil {
		t.Fatal(err)
	}
	m, err := net.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func snap(i int) *features.Snapshot {
	return &features.Snapshot{Features: map[string]float64{"views_total": float64(i), "purchases_total": float64(i % 5), "activity_1h": 0.3 * float64(i)},
		Tokens: map[string][]string{"category": {"c" + string(rune('a'+i%7))}, "brand": {"b"}}}
}

type memSender struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (s *memSender) Send(_ context.Context, msgs ...kafka.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, msgs...)
	return nil
}

func TestRegistryRoundTripAndLifecycle(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ann := &memSender{}
			reg, err := registry.New(registry.Config{Backend: mk(t), Announce: ann})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := reg.Champion(ctx); !errors.Is(err, registry.ErrNoChampion) {
				t.Fatalf("empty registry: Champion err = %v, want ErrNoChampion", err)
			}
			if _, err := reg.Get(ctx, 1); !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("Get(1) on empty registry: %v", err)
			}
			models := map[int64]*nn.Model{}
			for i := 1; i <= 3; i++ {
				m := trainedModel(t, uint64(i))
				state := []byte(strings.Repeat("s", i))
				v, err := reg.Create(ctx, registry.Version{
					Parent: int64(i - 1), SchemaHash: inputs.SchemaHash(testArch), Arch: m.Arch(), Topic: "profile-examples",
					Offsets: map[int]int64{0: int64(10 * i), 3: 7}, Examples: int64(100 * i),
					Metrics: map[string]map[string]registry.Metrics{inputs.HeadPurchase: {
						"network": {AUC: 0.8, LogLoss: 0.4, ECE: 0.01, Examples: 500, Positives: 50},
						"bgnbd":   {AUC: registry.Float(math.NaN())},
					}},
				}, m, state)
				if err != nil {
					t.Fatal(err)
				}
				if v.Number != int64(i) || v.Status != registry.StatusCandidate || v.ModelBytes == 0 {
					t.Fatalf("created %+v", v)
				}
				models[v.Number] = m
				got, err := reg.State(ctx, v.Number)
				if err != nil || !bytes.Equal(got, state) {
					t.Fatalf("state of %d: %q, %v", v.Number, got, err)
				}
			}
			list, err := reg.List(ctx)
			if err != nil || len(list) != 3 {
				t.Fatalf("List: %d versions, %v", len(list), err)
			}
			for i, v := range list {
				if v.Number != int64(i+1) || v.Offsets[0] != int64(10*(i+1)) || v.Parent != int64(i) {
					t.Errorf("listed %+v", v)
				}
				if m := v.Metrics[inputs.HeadPurchase]; m["network"].AUC != 0.8 || !math.IsNaN(float64(m["bgnbd"].AUC)) {
					t.Errorf("metrics did not round-trip: %+v", m)
				}
				// The stored weights score bit-identically.
				loaded, err := reg.Model(ctx, v.Number)
				if err != nil {
					t.Fatal(err)
				}
				enc, _ := inputs.New(loaded.Arch())
				for k := range 20 {
					want, _ := models[v.Number].Predict(enc.Encode(snap(k)))
					got, _ := loaded.Predict(enc.Encode(snap(k)))
					for h := range want {
						if math.Float64bits(want[h]) != math.Float64bits(got[h]) {
							t.Fatalf("version %d scores %v after loading, %v before", v.Number, got, want)
						}
					}
				}
			}

			// Promote 1, then 2; roll back to 1; promote 3; roll back → 1
			// (2 was rolled back and is skipped).
			steps := []struct {
				op       func() (registry.Version, error)
				champion int64
			}{
				{func() (registry.Version, error) { return reg.Promote(ctx, 1, "first") }, 1},
				{func() (registry.Version, error) { return reg.Promote(ctx, 2, "better") }, 2},
				{func() (registry.Version, error) { return reg.Rollback(ctx, "worse live") }, 1},
				{func() (registry.Version, error) { return reg.Promote(ctx, 3, "again") }, 3},
				{func() (registry.Version, error) { return reg.Rollback(ctx, "bad") }, 1},
			}
			for i, s := range steps {
				v, err := s.op()
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if v.Number != s.champion || v.Status != registry.StatusChampion {
					t.Fatalf("step %d: got %+v, want champion %d", i, v, s.champion)
				}
				cv, _, err := reg.Champion(ctx)
				if err != nil || cv.Number != s.champion {
					t.Fatalf("step %d: champion %d (%v), want %d", i, cv.Number, err, s.champion)
				}
			}
			want := map[int64]registry.Status{1: registry.StatusChampion, 2: registry.StatusRolledBack, 3: registry.StatusRolledBack}
			list, _ = reg.List(ctx)
			champions := 0
			for _, v := range list {
				if v.Status != want[v.Number] {
					t.Errorf("version %d is %s, want %s", v.Number, v.Status, want[v.Number])
				}
				if v.Status == registry.StatusChampion {
					champions++
				}
			}
			if champions != 1 {
				t.Errorf("%d champions", champions)
			}
			if _, err := reg.Rollback(ctx, "no more"); !errors.Is(err, registry.ErrNoPrevious) {
				t.Errorf("rollback with no earlier good champion: %v", err)
			}
			if _, err := reg.Promote(ctx, 1, "again"); !errors.Is(err, registry.ErrTransition) {
				t.Errorf("promoting the champion: %v", err)
			}
			if _, err := reg.Retire(ctx, 1, "x"); !errors.Is(err, registry.ErrTransition) {
				t.Errorf("retiring the champion: %v", err)
			}
			if _, err := reg.RollbackFrom(ctx, 3, "stale"); !errors.Is(err, registry.ErrTransition) {
				t.Errorf("RollbackFrom a version that is not champion: %v", err)
			}
			if _, err := reg.Promote(ctx, 99, "x"); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("promoting a missing version: %v", err)
			}
			meta, _ := reg.Meta(ctx)
			if meta.Latest != 3 || meta.Champion != 1 || len(meta.History) != 5 {
				t.Errorf("meta %+v", meta)
			}
			// Every create and change was announced, keyed by version.
			ann.mu.Lock()
			defer ann.mu.Unlock()
			last := map[string]registry.Version{}
			for _, m := range ann.msgs {
				if m.Topic != registry.DefaultTopic {
					t.Fatalf("announced on %q", m.Topic)
				}
				v, err := registry.DecodeVersion(m.Value)
				if err != nil {
					t.Fatal(err)
				}
				last[string(m.Key)] = v
			}
			if len(last) != 3 || last["1"].Status != registry.StatusChampion || last["2"].Status != registry.StatusRolledBack {
				t.Errorf("compacted announcements: %+v", last)
			}
		})
	}
}

// Concurrent writers (a trainer cutting versions, the CLI promoting) never
// lose an update: every create gets its own number and the meta record
// stays consistent.
func TestConcurrentWriters(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			reg, _ := registry.New(registry.Config{Backend: mk(t)})
			m := trainedModel(t, 1)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 5; i++ {
						v, err := reg.Create(ctx, registry.Version{Arch: m.Arch()}, m, nil)
						if err != nil {
							errs <- err
							return
						}
						if _, err := reg.AddNote(ctx, v.Number, "note"); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			list, err := reg.List(ctx)
			if err != nil || len(list) != 20 {
				t.Fatalf("%d versions (%v), want 20", len(list), err)
			}
			for i, v := range list {
				if v.Number != int64(i+1) || len(v.Notes) != 1 {
					t.Errorf("version %+v", v)
				}
			}
		})
	}
}

// Scorers read the champion through the holder while the watcher swaps it;
// every score is stamped with the version that produced it and equals that
// version's own prediction.
func TestWatcherHotSwap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, _ := registry.NewDirBackend(t.TempDir())
	reg, _ := registry.New(registry.Config{Backend: b})
	models := map[int64]*nn.Model{}
	for i := 1; i <= 3; i++ {
		m := trainedModel(t, uint64(i))
		v, err := reg.Create(ctx, registry.Version{SchemaHash: inputs.SchemaHash(testArch), Arch: m.Arch()}, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		models[v.Number] = m
	}
	w, err := registry.NewWatcher(registry.WatcherConfig{Registry: reg, Interval: 5 * time.Millisecond, SchemaHash: inputs.SchemaHash(testArch)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Refresh(ctx); !errors.Is(err, registry.ErrNoChampion) {
		t.Fatalf("Refresh without champion: %v", err)
	}
	go w.Run(ctx)
	seen := map[int64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := w.Champion().Load()
				if s == nil {
					continue
				}
				sc, err := s.Score(snap(i))
				if err != nil {
					t.Error(err)
					return
				}
				want, _ := models[sc.Version].Predict(s.Encoder.Encode(snap(i)))
				if sc.Probs[0] != want[0] || sc.Probs[1] != want[1] {
					t.Errorf("score stamped %d is not that version's", sc.Version)
					return
				}
				mu.Lock()
				seen[sc.Version] = true
				mu.Unlock()
			}
		}()
	}
	waitChampion := func(n int64) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if s := w.Champion().Load(); s != nil && s.Version.Number == n {
				mu.Lock()
				ok := seen[n]
				mu.Unlock()
				if ok {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("champion %d not served", n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	for _, op := range []struct {
		do   func() error
		want int64
	}{
		{func() error { _, err := reg.Promote(ctx, 1, ""); return err }, 1},
		{func() error { _, err := reg.Promote(ctx, 3, ""); return err }, 3},
		{func() error { _, err := reg.Rollback(ctx, ""); return err }, 1},
	} {
		if err := op.do(); err != nil {
			t.Fatal(err)
		}
		waitChampion(op.want)
	}
	close(stop)
	wg.Wait()
	if w.Swaps() != 3 {
		t.Errorf("%d swaps, want 3", w.Swaps())
	}
}

func TestWatcherRefusesOtherSchema(t *testing.T) {
	ctx := context.Background()
	b, _ := registry.NewDirBackend(t.TempDir())
	reg, _ := registry.New(registry.Config{Backend: b})
	m := trainedModel(t, 1)
	v, _ := reg.Create(ctx, registry.Version{SchemaHash: inputs.SchemaHash(testArch)}, m, nil)
	if _, err := reg.Promote(ctx, v.Number, ""); err != nil {
		t.Fatal(err)
	}
	w, _ := registry.NewWatcher(registry.WatcherConfig{Registry: reg, SchemaHash: "other"})
	if err := w.Refresh(ctx); !errors.Is(err, registry.ErrSchema) {
		t.Fatalf("Refresh with another schema: %v", err)
	}
	if w.Champion().Load() != nil {
		t.Fatal("a champion of another schema was served")
	}
	// A version whose recorded hash disagrees with its weights is refused.
	v2, _ := reg.Create(ctx, registry.Version{SchemaHash: "forged"}, m, nil)
	if _, err := registry.NewServed(v2, m); !errors.Is(err, registry.ErrSchema) {
		t.Fatalf("NewServed with a forged hash: %v", err)
	}
}

func TestFloatJSON(t *testing.T) {
	for _, c := range []struct {
		in   float64
		json string
	}{{0.5, "0.5"}, {math.NaN(), "null"}, {math.Inf(1), "1.7976931348623157e+308"}, {0, "0"}} {
		b, err := json.Marshal(registry.Float(c.in))
		if err != nil || string(b) != c.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", c.in, b, err, c.json)
		}
		var f registry.Float
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		if !(float64(f) == c.in || math.IsNaN(c.in) && math.IsNaN(float64(f)) || math.IsInf(c.in, 1) && float64(f) == math.MaxFloat64) {
			t.Errorf("round trip of %v gave %v", c.in, f)
		}
	}
}

func FuzzDecodeVersion(f *testing.F) {
	v := registry.Version{Number: 3, Status: registry.StatusChampion, Offsets: map[int]int64{1: 2},
		Metrics: map[string]map[string]registry.Metrics{"t": {"m": {AUC: 0.5}}}}
	b, _ := v.Encode()
	f.Add(b)
	f.Add([]byte(`{"version":0}`))
	f.Add([]byte(`{"version":1,"status":"champion","metrics":{"t":{"m":{"auc":"x"}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := registry.DecodeVersion(b)
		if err != nil {
			return
		}
		if v.Number < 1 || !v.Status.Valid() {
			t.Fatalf("accepted %+v", v)
		}
		out, err := v.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := registry.DecodeVersion(out); err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
	})
}

// PruneStates rewrites the states of every version but the latest, each
// once: a second call reads nothing already pruned, nil removes a state,
// and the latest version's state is never passed.
func TestPruneStatesSkipsTheLatestAndPrunesOnce(t *testing.T) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			reg, err := registry.New(registry.Config{Backend: mk(t)})
			if err != nil {
				t.Fatal(err)
			}
			m := trainedModel(t, 1)
			create := func(state string) int64 {
				t.Helper()
				var b []byte
				if state != "" {
					b = []byte(state)
				}
				v, err := reg.Create(ctx, registry.Version{Arch: m.Arch()}, m, b)
				if err != nil {
					t.Fatal(err)
				}
				return v.Number
			}
			passed := map[int64]int{}
			prune := func(n int64, state []byte) ([]byte, error) {
				passed[n]++
				switch s := string(state); {
				case s == "drop":
					return nil, nil
				case strings.HasPrefix(s, "keep"):
					return state, nil
				default:
					return []byte("pruned:" + s), nil
				}
			}
			create("a") // 1
			create("")  // 2: no state
			create("drop")
			create("keep")
			latest := create("b") // 5
			n, err := reg.PruneStates(ctx, latest+10, prune)
			if err != nil || n != 2 {
				t.Fatalf("PruneStates: %d changed, %v; want 2", n, err)
			}
			want := map[int64]string{1: "pruned:a", 2: "", 3: "", 4: "keep", 5: "b"}
			check := func(when string) {
				t.Helper()
				for v, w := range want {
					got, err := reg.State(ctx, v)
					if err != nil || string(got) != w || (w == "") != (got == nil) {
						t.Fatalf("%s: state of %d = %q (nil %v), %v; want %q", when, v, got, got == nil, err, w)
					}
				}
			}
			check("after the first prune")
			if passed[5] != 0 || passed[2] != 0 || passed[1] != 1 || passed[3] != 1 || passed[4] != 1 {
				t.Fatalf("passed to prune: %v", passed)
			}
			if meta, _ := reg.Meta(ctx); meta.StatesPrunedBelow != latest {
				t.Fatalf("StatesPrunedBelow %d, want %d", meta.StatesPrunedBelow, latest)
			}
			latest = create("c") // 6
			if n, err := reg.PruneStates(ctx, latest, prune); err != nil || n != 1 {
				t.Fatalf("second PruneStates: %d changed, %v; want 1", n, err)
			}
			want[5], want[6] = "pruned:b", "c"
			check("after the second prune")
			if passed[1] != 1 || passed[5] != 1 || passed[6] != 0 {
				t.Fatalf("passed to prune: %v", passed)
			}
			boom := errors.New("boom")
			create("d") // 7
			if _, err := reg.PruneStates(ctx, 8, func(int64, []byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
				t.Fatalf("failing prune: %v", err)
			}
			if meta, _ := reg.Meta(ctx); meta.StatesPrunedBelow != 6 {
				t.Fatalf("after a failed prune StatesPrunedBelow %d, want 6 (retried later)", meta.StatesPrunedBelow)
			}
			if err := reg.Backend().SetState(ctx, 99, []byte("x"), nil); !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("SetState of a missing version: %v", err)
			}
		})
	}
}
