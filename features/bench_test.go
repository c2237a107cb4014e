package features_test

import (
	"errors"
	"io"
	"testing"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// sampleEvents returns the bundled REES46 sample's events in file order.
func sampleEvents(tb testing.TB) []stream.Event {
	tb.Helper()
	r, c, err := source.Open(source.REES46, source.EmbeddedPrefix+data.REES46Sample)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	var out []stream.Event
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, rec.Event)
	}
}

// sampleStates applies the sample and returns every user's final state.
func sampleStates(tb testing.TB) []*features.State {
	cfg := features.Config{}.WithDefaults()
	states := map[string]*features.State{}
	var order []*features.State
	for _, ev := range sampleEvents(tb) {
		st := states[ev.ProfileKey()]
		if st == nil {
			st = &features.State{}
			states[ev.ProfileKey()] = st
			order = append(order, st)
		}
		st.Apply(&ev, features.Env{Cfg: &cfg, Watermark: ev.TS.Add(-cfg.AllowedLateness).UnixMilli()})
	}
	return order
}

// BenchmarkStateApply applies the sample's events, in order, to per-user
// states (fresh ones on each pass, so no event is a duplicate).
func BenchmarkStateApply(b *testing.B) {
	evs := sampleEvents(b)
	cfg := features.Config{}.WithDefaults()
	states := map[string]*features.State{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%len(evs) == 0 {
			clear(states)
		}
		ev := &evs[i%len(evs)]
		st := states[ev.ProfileKey()]
		if st == nil {
			st = &features.State{}
			states[ev.ProfileKey()] = st
		}
		if st.Apply(ev, features.Env{Cfg: &cfg, Watermark: ev.TS.Add(-cfg.AllowedLateness).UnixMilli()}) != features.Applied {
			b.Fatal("not applied")
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkStateMarshalBinary encodes the sample's user states (what every
// flush does for each dirty user).
func BenchmarkStateMarshalBinary(b *testing.B) {
	states := sampleStates(b)
	var bytes int64
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		out, err := states[i%len(states)].MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(out))
		i++
	}
	b.ReportMetric(float64(bytes)/float64(max(i, 1)), "bytes/state")
}

// BenchmarkStateUnmarshalBinary decodes them (what every cache miss does).
func BenchmarkStateUnmarshalBinary(b *testing.B) {
	states := sampleStates(b)
	enc := make([][]byte, len(states))
	for i, st := range states {
		var err error
		if enc[i], err = st.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var st features.State
		if err := st.UnmarshalBinary(enc[i%len(enc)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkNewSnapshot builds the snapshot the pipeline publishes after an
// event (evaluation of every feature and the top affinities).
func BenchmarkNewSnapshot(b *testing.B) {
	evs := sampleEvents(b)
	cfg := features.Config{}.WithDefaults()
	states := sampleStates(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := &evs[i%len(evs)]
		s := features.NewSnapshot(ev, ev.ProfileKey(), states[i%len(states)], &cfg, features.SnapshotSource{})
		if s.Features == nil {
			b.Fatal("no features")
		}
		i++
	}
}
