package scorer

import (
	"testing"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/sink/segment"
)

// benchSnapshots runs b.N snapshots of the REES46 sample (cycled, with
// times shifted so that each pass comes after the previous) through one
// engine: score, segments of the default catalogue, triggers, and the
// explanation of the user's scores every explainEvery snapshots (1: each
// snapshot; 500: at each flush of the default size, once per user dirty
// since the last; 0: never).
func benchSnapshots(b *testing.B, explainEvery int) {
	explain := explainEvery > 0
	s := sampleData(b)
	served := trainedServed(b)
	cfg := Config{Triggers: triggerConfig()}.WithDefaults()
	if !explain {
		cfg.ExplainTop = 0
	}
	sk, err := segment.NewSketches(cfg.Sketch, segment.ScoreNames()...)
	if err != nil {
		b.Fatal(err)
	}
	e := newEngine(&cfg, newCounters(), sk)
	users := map[string]*user{}
	e.lookup = func(id string) *user { return users[id] }
	cat, err := segment.Default()
	if err != nil {
		b.Fatal(err)
	}
	span := s.snaps[len(s.snaps)-1].TS.Sub(s.snaps[0].TS) + 1e9
	snaps := make([]features.Snapshot, len(s.snaps))
	copy(snaps, s.snaps)
	e.begin(cat, served)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(snaps)
		if k == 0 && i > 0 {
			for j := range snaps {
				snaps[j].TS = snaps[j].TS.Add(span)
			}
			e.out = e.out[:0]
			e.dirty = e.dirty[:0]
		}
		sn := &snaps[k]
		u := users[sn.User]
		if u == nil {
			u = &user{id: sn.User, o: -2}
			u.st.unmarshal(nil)
			users[sn.User] = u
		}
		if err := e.snapshot(u, sn, int64(i), sn.TS.UnixMilli()); err != nil {
			b.Fatal(err)
		}
		if len(e.out) > 4096 {
			e.out = e.out[:0]
		}
		if explain && (i+1)%explainEvery == 0 {
			for _, d := range e.dirty {
				if err := e.explain(d); err != nil {
					b.Fatal(err)
				}
			}
		}
		if !explain || (i+1)%explainEvery == 0 {
			for _, d := range e.dirty {
				d.dirty = false
			}
			e.dirty = e.dirty[:0]
		}
	}
}

// µs per snapshot through the scorer's evaluation (no I/O): explained at
// every snapshot, at every flush of 500 (what the processor does), never.
func BenchmarkSnapshotExplainEach(b *testing.B)  { benchSnapshots(b, 1) }
func BenchmarkSnapshotExplainFlush(b *testing.B) { benchSnapshots(b, 500) }
func BenchmarkSnapshotNoExplain(b *testing.B)    { benchSnapshots(b, 0) }
