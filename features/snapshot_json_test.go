package features_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// requireSameAsMarshal checks the specification of Snapshot.Encode: it
// returns exactly what json.Marshal returns, bytes or error.
func requireSameAsMarshal(t *testing.T, s *features.Snapshot) {
	t.Helper()
	want, werr := json.Marshal(s)
	got, gerr := s.Encode()
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("json.Marshal error %v, Encode error %v\nsnapshot %#v", werr, gerr, s)
	}
	if werr != nil {
		if werr.Error() != gerr.Error() {
			t.Fatalf("errors differ:\njson.Marshal: %v\nEncode:       %v", werr, gerr)
		}
		return
	}
	if string(got) != string(want) {
		t.Fatalf("Encode differs from json.Marshal:\njson.Marshal: %s\nEncode:       %s", want, got)
	}
}

// snapshotsFromStream applies a random stream and returns the snapshot of
// every applied behavioural event, as the pipeline's snapshot stage builds
// them.
func snapshotsFromStream(r *rand.Rand, n int) []features.Snapshot {
	cfg := features.Config{}.WithDefaults()
	states := map[string]*features.State{}
	var out []features.Snapshot
	for i, ev := range genEvents(r, n, 30, 48*time.Hour, time.Minute) {
		st := states[ev.ProfileKey()]
		if st == nil {
			st = &features.State{}
			states[ev.ProfileKey()] = st
		}
		env := features.Env{Cfg: &cfg, Watermark: ev.TS.Add(-cfg.AllowedLateness).UnixMilli()}
		if st.Apply(&ev, env) != features.Applied {
			continue
		}
		out = append(out, features.NewSnapshot(&ev, ev.ProfileKey(), st, &cfg, features.SnapshotSource{
			Topic: "clickstream", Partition: i % 6, Offset: int64(i), Appended: ev.TS.Add(time.Duration(i) * time.Millisecond),
		}))
	}
	return out
}

func TestSnapshotEncodeEqualsMarshalOnPipelineSnapshots(t *testing.T) {
	snaps := snapshotsFromStream(rand.New(rand.NewPCG(11, 12)), 2000)
	if len(snaps) < 1000 {
		t.Fatalf("only %d snapshots", len(snaps))
	}
	for i := range snaps {
		requireSameAsMarshal(t, &snaps[i])
	}
}

// awkward strings exercise every escaping rule of encoding/json.
var awkward = []string{
	"", "plain", `quote"back\slash`, "<html>&amp;", "tab\tnl\ncr\rbs\bff\f", "\x00\x01\x1f\x7f",
	"é ü ñ 日本", "line\u2028para\u2029", "bad\xffutf8\xc3", "emoji 🙂", "}{,:[]",
}

// awkwardFloats exercise the number formatting cut-offs.
var awkwardFloats = []float64{0, 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, -1e-9, 1e20, 1e21, 1.5e300, -2.5e-300,
	123456789.123, math.SmallestNonzeroFloat64, math.MaxFloat64, 1.0 / 3}

func TestSnapshotEncodeEqualsMarshalOnEdgeCases(t *testing.T) {
	base := features.Snapshot{Version: 1, ID: "e1", User: "u1", TS: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), Type: "view"}
	cases := map[string]func(s *features.Snapshot){
		"minimal, nil maps":     func(s *features.Snapshot) {},
		"empty maps":            func(s *features.Snapshot) { s.Features, s.Tokens = map[string]float64{}, map[string][]string{} },
		"nil token list":        func(s *features.Snapshot) { s.Tokens = map[string][]string{"brand": nil, "category": {}} },
		"unknown feature names": func(s *features.Snapshot) { s.Features = map[string]float64{"zz": 1, "views_total": 2, "a": 3} },
		"time zone and nanos": func(s *features.Snapshot) {
			s.TS = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 5*3600+1800))
			s.Source.Appended = time.Date(1999, 12, 31, 23, 59, 59, 0, time.FixedZone("y", -7*3600))
		},
		"zero appended time": func(s *features.Snapshot) { s.Source.Appended = time.Time{} },
		"every optional field": func(s *features.Snapshot) {
			s.ItemID, s.Category, s.Brand, s.Price, s.Amount, s.AdsOff, s.ProfilingOff = "i", "c", "b", 1.5, 3, true, true
		},
		"consent snapshot": func(s *features.Snapshot) {
			s.Type, s.Features, s.AdsOff, s.ProfilingOff = "consent", map[string]float64{}, false, true
		},
		"recent items":            func(s *features.Snapshot) { s.Recent = []string{"a", "b\u2028\"", ""} },
		"empty recent items":      func(s *features.Snapshot) { s.Recent = []string{} },
		"negative price":          func(s *features.Snapshot) { s.Price, s.Amount = -2, -0.0000001 },
		"NaN feature (error)":     func(s *features.Snapshot) { s.Features = map[string]float64{"views_total": math.NaN()} },
		"Inf price (error)":       func(s *features.Snapshot) { s.Price = math.Inf(1) },
		"year 10000 (error)":      func(s *features.Snapshot) { s.TS = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"negative year (error)":   func(s *features.Snapshot) { s.Source.Appended = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
		"offset hours 24 (error)": func(s *features.Snapshot) { s.TS = time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("z", 24*3600)) },
	}
	for i, str := range awkward {
		cases[fmt.Sprintf("string %d", i)] = func(s *features.Snapshot) {
			s.ID, s.User, s.Type, s.ItemID, s.Category, s.Brand, s.Source.Topic = str, str, str, str, str, str, str
			s.Features = map[string]float64{str: 1}
			s.Tokens = map[string][]string{str: {str, str}}
			s.Recent = []string{str, str}
		}
	}
	for i, f := range awkwardFloats {
		cases[fmt.Sprintf("float %d", i)] = func(s *features.Snapshot) {
			s.Price, s.Amount = f, -f
			s.Features = map[string]float64{"views_total": f, "revenue_total": -f}
		}
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			s := base
			edit(&s)
			requireSameAsMarshal(t, &s)
		})
	}
}

func TestSnapshotEncodeDecodesBack(t *testing.T) {
	for _, s := range snapshotsFromStream(rand.New(rand.NewPCG(3, 4)), 300) {
		b, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := features.DecodeSnapshot(b)
		if err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		again, err := back.Encode()
		if err != nil || string(again) != string(b) {
			t.Fatalf("decode + encode changed the bytes (err %v):\n%s\n%s", err, b, again)
		}
	}
}

func FuzzSnapshotEncode(f *testing.F) {
	for i, s := range awkward {
		f.Add(s, s, awkwardFloats[i%len(awkwardFloats)], int64(i), int64(i)*1e9+int64(i))
	}
	f.Fuzz(func(t *testing.T, str, key string, v float64, offset, unixNanos int64) {
		s := features.Snapshot{Version: 1, ID: str, User: key, TS: time.Unix(0, unixNanos).UTC(), Type: string(stream.TypeView),
			ItemID: str, Price: v, Amount: -v, Features: map[string]float64{key: v, "views_total": v / 3, str: 1},
			Tokens: map[string][]string{key: {str}, "brand": {key, str}}, Recent: []string{key, str},
			Source: features.SnapshotSource{Topic: key, Partition: int(offset % 1000), Offset: offset, Appended: time.Unix(0, -unixNanos)}}
		requireSameAsMarshal(t, &s)
	})
}

// BenchmarkSnapshotEncode compares Encode with the json.Marshal it
// replaces, on snapshots the pipeline builds.
func BenchmarkSnapshotEncode(b *testing.B) {
	snaps := snapshotsFromStream(rand.New(rand.NewPCG(1, 2)), 2000)
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := snaps[i%len(snaps)].Encode(); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := json.Marshal(&snaps[i%len(snaps)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
