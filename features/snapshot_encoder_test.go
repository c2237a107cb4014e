package features_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// requireEncoderSameAsEncode checks the specification of
// SnapshotEncoder.Append: it appends exactly what NewSnapshot(...).Encode()
// returns, bytes or error, after whatever b already holds.
func requireEncoderSameAsEncode(t *testing.T, enc *features.SnapshotEncoder, b []byte, ev *stream.Event, user string,
	st *features.State, cfg *features.Config, src features.SnapshotSource) []byte {
	t.Helper()
	snap := features.NewSnapshot(ev, user, st, cfg, src)
	want, werr := snap.Encode()
	prefix := string(b)
	got, gerr := enc.Append(b, ev, user, st, cfg, src)
	if (werr != nil) != (gerr != nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("Encode error %v, Append error %v", werr, gerr)
	}
	if string(got[:len(prefix)]) != prefix {
		t.Fatalf("Append changed the bytes before it: %q, want %q", got[:len(prefix)], prefix)
	}
	if werr != nil {
		if len(got) != len(prefix) {
			t.Fatalf("Append failed (%v) but appended %q", gerr, got[len(prefix):])
		}
		return got
	}
	if g := string(got[len(prefix):]); g != string(want) {
		t.Fatalf("Append differs from NewSnapshot + Encode:\nEncode: %s\nAppend: %s", want, g)
	}
	return got
}

// TestSnapshotEncoderEqualsEncodeOnSample replays the bundled REES46 sample
// and compares the encoder with NewSnapshot + Encode after every applied
// event, under several affinity configurations (TopK above the insertion
// limit takes the sorting path). One encoder and one buffer are reused
// throughout, as the pipeline reuses them.
func TestSnapshotEncoderEqualsEncodeOnSample(t *testing.T) {
	evs := sampleEvents(t)
	for _, c := range []features.Config{
		{},
		{TopK: 1},
		{TopK: 3, MaxAffinityEntries: 4},
		{TopK: 40},
	} {
		cfg := c.WithDefaults()
		t.Run(fmt.Sprintf("topk=%d,entries=%d", cfg.TopK, cfg.MaxAffinityEntries), func(t *testing.T) {
			var enc features.SnapshotEncoder
			var buf []byte
			states := map[string]*features.State{}
			applied := 0
			for i := range evs {
				ev := &evs[i]
				st := states[ev.ProfileKey()]
				if st == nil {
					st = &features.State{}
					states[ev.ProfileKey()] = st
				}
				if st.Apply(ev, features.Env{Cfg: &cfg, Watermark: ev.TS.Add(-cfg.AllowedLateness).UnixMilli()}) != features.Applied {
					continue
				}
				applied++
				src := features.SnapshotSource{Topic: "clickstream", Partition: i % 7, Offset: int64(i), Appended: ev.TS.Add(time.Duration(i))}
				buf = requireEncoderSameAsEncode(t, &enc, buf[:0], ev, "p-"+ev.ProfileKey(), st, &cfg, src)
			}
			if applied < 1000 {
				t.Fatalf("only %d events applied", applied)
			}
		})
	}
}

// TestSnapshotEncoderEqualsEncodeOnGenerated covers what the sample lacks:
// purchases with quantities, search terms, withdrawn ad consent, consent
// snapshots (ads and profiling withdrawn and granted again), awkward
// strings and an output buffer that already holds bytes.
func TestSnapshotEncoderEqualsEncodeOnGenerated(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	r := rand.New(rand.NewPCG(5, 6))
	var enc features.SnapshotEncoder
	states := map[string]*features.State{}
	no, yes := false, true
	applied, consents := 0, 0
	for i, ev := range genEvents(r, 3000, 25, 72*time.Hour, time.Minute) {
		st := states[ev.ProfileKey()]
		if st == nil {
			st = &features.State{}
			states[ev.ProfileKey()] = st
		}
		env := features.Env{Cfg: &cfg, Watermark: ev.TS.Add(-cfg.AllowedLateness).UnixMilli()}
		consent := func(id string, c stream.Consent) {
			ev := stream.Event{Schema: 1, EventID: id, Type: stream.TypeConsent, UserID: ev.UserID, TS: ev.TS, Consent: &c,
				ItemID: "not-kept", Category: "c", Price: &[]float64{2}[0]}
			if st.Apply(&ev, env) != features.Applied {
				t.Fatalf("consent %s not applied", id)
			}
			src := features.SnapshotSource{Topic: "clickstream", Partition: i, Offset: int64(i), Appended: ev.TS}
			requireEncoderSameAsEncode(t, &enc, []byte(`prefix`), &ev, ev.ProfileKey(), st, &cfg, src)
			consents++
		}
		if i%97 == 0 {
			consent(fmt.Sprintf("c%d", i), stream.Consent{Ads: &no})
		}
		if i%101 == 0 {
			// Withdrawn and granted again: both consent snapshots.
			consent(fmt.Sprintf("p%d", i), stream.Consent{Profiling: &no})
			consent(fmt.Sprintf("q%d", i), stream.Consent{Profiling: &yes, Ads: &yes})
		}
		if i%13 == 0 {
			ev.Brand = awkward[i%len(awkward)]
			ev.EventID += awkward[(i/13)%len(awkward)]
		}
		if st.Apply(&ev, env) != features.Applied {
			continue
		}
		applied++
		src := features.SnapshotSource{Topic: awkward[i%len(awkward)], Partition: i, Offset: int64(i) << 20,
			Appended: ev.TS.Add(time.Duration(i) * time.Microsecond).In(time.FixedZone("z", 3600*(i%5)))}
		requireEncoderSameAsEncode(t, &enc, []byte(`prefix{"x":1}`), &ev, ev.ProfileKey(), st, &cfg, src)
	}
	if applied < 2000 || consents < 60 {
		t.Fatalf("only %d events and %d consent events applied", applied, consents)
	}
}

func TestSnapshotEncoderErrors(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	ev := stream.Event{Schema: 1, EventID: "e1", Type: stream.TypeView, UserID: "u", ItemID: "i",
		TS: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	var st features.State
	st.Apply(&ev, features.Env{Cfg: &cfg})
	var enc features.SnapshotEncoder
	for name, src := range map[string]features.SnapshotSource{
		"appended year 10000": {Appended: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"appended year -1":    {Appended: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		"valid":               {Topic: "t", Appended: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(name, func(t *testing.T) {
			requireEncoderSameAsEncode(t, &enc, []byte("kept"), &ev, "u", &st, &cfg, src)
		})
	}
}

// BenchmarkSnapshotBuildEncode is the snapshot stage's cost per event:
// building and encoding a snapshot from a user's state, the old way
// (NewSnapshot + Encode) and with a reused SnapshotEncoder and buffer.
func BenchmarkSnapshotBuildEncode(b *testing.B) {
	evs := sampleEvents(b)
	cfg := features.Config{}.WithDefaults()
	states := sampleStates(b)
	b.Run("NewSnapshot+Encode", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ev := &evs[i%len(evs)]
			s := features.NewSnapshot(ev, ev.ProfileKey(), states[i%len(states)], &cfg, features.SnapshotSource{Topic: "clickstream"})
			if _, err := s.Encode(); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("SnapshotEncoder", func(b *testing.B) {
		var enc features.SnapshotEncoder
		var buf []byte
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ev := &evs[i%len(evs)]
			var err error
			if buf, err = enc.Append(buf[:0], ev, ev.ProfileKey(), states[i%len(states)], &cfg, features.SnapshotSource{Topic: "clickstream"}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
