package scorer

import (
	"errors"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/clv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// sample is the bundled REES46 sample replayed through feature states as
// the ingester does: the snapshot of every applied event, and each user's
// final state.
type sample struct {
	snaps  []features.Snapshot
	states map[string]*features.State
	events []stream.Event
}

var loadSample = sync.OnceValues(func() (*sample, error) {
	r, c, err := source.Open(source.REES46, source.EmbeddedPrefix+data.REES46Sample)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cfg := features.Config{}.WithDefaults()
	out := &sample{states: map[string]*features.State{}}
	var maxTS int64
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		ev := rec.Event
		ts := ev.TS.UnixMilli()
		if maxTS > 0 && ts < maxTS-cfg.AllowedLateness.Milliseconds() {
			continue
		}
		maxTS = max(maxTS, ts)
		u := ev.ProfileKey()
		st := out.states[u]
		if st == nil {
			st = &features.State{}
			out.states[u] = st
		}
		if st.Apply(&ev, features.Env{Cfg: &cfg, Watermark: maxTS - cfg.AllowedLateness.Milliseconds()}) == features.Applied {
			out.snaps = append(out.snaps, features.NewSnapshot(&ev, u, st, &cfg, features.SnapshotSource{Topic: "clickstream", Offset: int64(len(out.snaps))}))
			out.events = append(out.events, ev)
		}
	}
	return out, nil
})

func sampleData(t testing.TB) *sample {
	t.Helper()
	s, err := loadSample()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// heavySnaps returns the sample's snapshots for the heaviest tests: all of
// them, or under the race detector the first 3000.
func heavySnaps(t testing.TB) []features.Snapshot {
	s := sampleData(t).snaps
	if raceEnabled {
		return s[:min(len(s), 3000)]
	}
	return s
}

// sampleLabels computes the trainer's two labels for each snapshot: a purchase
// by the user within 30 minutes after it, and a purchase on a later UTC
// day within 90 days.
func sampleLabels(snaps []features.Snapshot) (purchase, repeat []float64) {
	buys := map[string][]int64{}
	for _, s := range snaps {
		if s.Type == string(stream.TypePurchase) {
			buys[s.User] = append(buys[s.User], s.TS.UnixMilli())
		}
	}
	for _, b := range buys {
		sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	}
	purchase, repeat = make([]float64, len(snaps)), make([]float64, len(snaps))
	for i, s := range snaps {
		t := s.TS.UnixMilli()
		for _, b := range buys[s.User] {
			if b > t && b <= t+30*60*1000 {
				purchase[i] = 1
			}
			if utcDay(b) > utcDay(t) && b <= t+90*dayMs {
				repeat[i] = 1
			}
		}
	}
	return purchase, repeat
}

// trained is a network of the default architecture trained on the sample,
// served as version 7 with BG/NBD and Gamma-Gamma parameters fitted on the
// sample's customers.
var trained = sync.OnceValues(func() (*registry.Served, error) {
	s, err := loadSample()
	if err != nil {
		return nil, err
	}
	last := map[string]*features.Snapshot{}
	for i := range s.snaps {
		last[s.snaps[i].User] = &s.snaps[i]
	}
	var cs []clv.Customer
	for _, sn := range last {
		if c, ok := inputs.CustomerOf(sn.Features); ok {
			cs = append(cs, c)
		}
	}
	params := &registry.CLVParams{BGNBD: clv.BGNBD{R: 0.25, Alpha: 4, A: 0.8, B: 2.4}, Customers: len(cs), AsOf: time.Now().UTC()}
	if bg, _, err := clv.FitBGNBD(cs, clv.FitOptions{MaxEvaluations: 2000}); err == nil {
		params.BGNBD = bg
	}
	gg := clv.GammaGamma{P: 6, Q: 4, V: 15}
	params.GammaGamma = &gg
	arch := inputs.DefaultArch()
	base, err := inputs.New(arch)
	if err != nil {
		return nil, err
	}
	// The derived inputs are learnt with the fit the version is served
	// with.
	enc := base.WithFit(params.Fit())
	net, err := nn.NewNetwork(arch)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	pl, rl := sampleLabels(s.snaps)
	exs := make([]nn.Example, len(s.snaps))
	for i := range s.snaps {
		exs[i] = enc.Encode(&s.snaps[i])
		exs[i].Labels = []float64{pl[i], rl[i]}
		exs[i].Mask = []bool{true, s.snaps[i].Features["purchase_days"] >= 1}
	}
	epochs := 2
	if raceEnabled {
		epochs, exs = 1, exs[:min(len(exs), 4000)]
	}
	for epoch := 0; epoch < epochs; epoch++ {
		for i := 0; i < len(exs); i += arch.BatchSize {
			if _, err := net.TrainBatch(exs[i:min(i+arch.BatchSize, len(exs))]); err != nil {
				return nil, err
			}
		}
	}
	m, err := net.Snapshot()
	if err != nil {
		return nil, err
	}
	v := registry.Version{Number: 7, SchemaHash: enc.SchemaHash(), Arch: arch, Status: registry.StatusChampion, CLV: params}
	return registry.NewServed(v, m)
})

func trainedServed(t testing.TB) *registry.Served {
	t.Helper()
	s, err := trained()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
