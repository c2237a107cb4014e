package nn

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"testing"
)

func trainedModel(t testing.TB) (*Network, *Model) {
	t.Helper()
	n := newTestNetwork(t, testArch())
	if _, err := n.TrainBatch(synth(10, 200)); err != nil {
		t.Fatal(err)
	}
	return n, snapshot(t, n)
}

func TestSaveLoadBitIdentical(t *testing.T) {
	_, m := trainedModel(t)
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		t.Fatal(err)
	}
	enc := append([]byte(nil), buf.Bytes()...)
	loaded, err := Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	again, err := loaded.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, again) {
		t.Error("encoding is not canonical: load then save changed the bytes")
	}
	if loaded.Steps() != m.Steps() || loaded.Examples() != m.Examples() {
		t.Errorf("counters: got %d/%d, want %d/%d", loaded.Steps(), loaded.Examples(), m.Steps(), m.Examples())
	}
	for i, ex := range synth(11, 300) {
		want, err := m.Predict(ex)
		if err != nil {
			t.Fatal(err)
		}
		got, err := loaded.Predict(ex)
		if err != nil {
			t.Fatal(err)
		}
		for h := range want {
			if math.Float64bits(got[h]) != math.Float64bits(want[h]) {
				t.Fatalf("example %d head %d: loaded model scores %v, original %v", i, h, got[h], want[h])
			}
		}
	}
}

func TestFineTuneFromSnapshot(t *testing.T) {
	_, m := trainedModel(t)
	ft, err := NewNetworkFrom(m)
	if err != nil {
		t.Fatal(err)
	}
	defer ft.Close()
	same := snapshot(t, ft)
	a, _ := m.MarshalBinary()
	b, _ := same.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Fatal("a network built from a snapshot does not reproduce it")
	}
	batch := synth(12, 64)
	first, err := ft.TrainBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	var last float64
	for range 30 {
		if last, err = ft.TrainBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	if !(last < first) {
		t.Errorf("fine-tuning: loss %v -> %v", first, last)
	}
	if got := snapshot(t, ft); got.Steps() != m.Steps()+31 || got.Examples() != m.Examples()+31*64 {
		t.Errorf("counters after fine-tuning: steps %d examples %d", got.Steps(), got.Examples())
	}
	// The source snapshot is untouched by the fine-tuning.
	c, _ := m.MarshalBinary()
	if !bytes.Equal(a, c) {
		t.Error("fine-tuning changed the source snapshot")
	}
}

// reseal recomputes the trailing checksum so that a test can reach the
// checks behind it.
func reseal(b []byte) []byte {
	body := b[:len(b)-trailerLen]
	binary.LittleEndian.PutUint32(b[len(body):], crc32.Checksum(body, castagnoli))
	return b
}

func TestUnmarshalRejectsCorruptInput(t *testing.T) {
	_, m := trainedModel(t)
	good, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	archOff := headerLen
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"header only", good[:headerLen], ErrCorrupt},
		{"truncated", good[:len(good)/2], ErrCorrupt},
		{"one byte short", good[:len(good)-1], ErrCorrupt},
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'X'; return b }), ErrCorrupt},
		{"future version", mut(func(b []byte) []byte { b[4] = 2; return reseal(b) }), ErrVersion},
		{"flipped weight bit", mut(func(b []byte) []byte { b[len(b)-20] ^= 1; return b }), ErrCorrupt},
		{"flipped checksum", mut(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), ErrCorrupt},
		{"unknown flags", mut(func(b []byte) []byte { b[6] = 1; return reseal(b) }), ErrCorrupt},
		{"trailing byte", mut(func(b []byte) []byte {
			b = append(b[:len(b)-trailerLen], 0, 0, 0, 0, 0)
			return reseal(b)
		}), ErrCorrupt},
		{"huge name count", mut(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[archOff:], math.MaxUint32)
			return reseal(b)
		}), ErrCorrupt},
		{"NaN weight", mut(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[len(b)-trailerLen-8:], math.Float64bits(math.NaN()))
			return reseal(b)
		}), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Model
			if err := got.UnmarshalBinary(tc.data); !errorsIs(err, tc.want) {
				t.Errorf("UnmarshalBinary: err = %v, want %v", err, tc.want)
			}
			if _, err := Load(bytes.NewReader(tc.data)); !errorsIs(err, tc.want) {
				t.Errorf("Load: err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := (&Model{}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary of a zero Model succeeded")
	}
}

// fuzzSeeds returns encodings of a tiny trained model and some variants.
func fuzzSeeds(f *testing.F) [][]byte {
	n, err := NewNetwork(Arch{NumericFeatures: []string{"x"}, TokenFields: []string{"t"}, HashBuckets: 4, EmbedDim: 2, Hidden: []int{3}, Heads: []string{"h"}, BatchSize: 4})
	if err != nil {
		f.Fatal(err)
	}
	defer n.Close()
	ex := Example{Numeric: []float64{3}, Tokens: map[string][]uint32{"t": {1, 2}}, Labels: []float64{1}, Mask: []bool{true}}
	if _, err := n.TrainBatch([]Example{ex, ex}); err != nil {
		f.Fatal(err)
	}
	m, err := n.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	good, err := m.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	return [][]byte{
		good,
		good[:len(good)-5],
		reseal(append([]byte(nil), good[:headerLen+12]...)),
		[]byte("SPNN\x01\x00\x00\x00"),
	}
}

// checkDecode is the fuzz property: decoding either fails with ErrCorrupt or
// ErrVersion, or yields a model that re-encodes to the same bytes and
// scores.
func checkDecode(t *testing.T, data []byte) {
	var m Model
	if err := m.UnmarshalBinary(data); err != nil {
		if !errorsIs(err, ErrCorrupt) && !errorsIs(err, ErrVersion) {
			t.Fatalf("error %v wraps neither ErrCorrupt nor ErrVersion", err)
		}
		return
	}
	again, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Fatal("decoded model re-encodes differently")
	}
	zero := Example{Numeric: make([]float64, len(m.arch.NumericFeatures))}
	if _, err := m.Predict(zero); err != nil {
		t.Fatalf("Predict on a decoded model: %v", err)
	}
	if _, err := m.Explain(zero, nil); err != nil {
		t.Fatalf("Explain on a decoded model: %v", err)
	}
}

// FuzzUnmarshalBinary feeds arbitrary bytes (almost all fail the checksum).
func FuzzUnmarshalBinary(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkDecode)
}

// FuzzUnmarshalResealed fixes the checksum of every input first, so the
// fuzzer explores the parser behind it.
func FuzzUnmarshalResealed(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= headerLen+trailerLen {
			data = reseal(append([]byte(nil), data...))
		}
		checkDecode(t, data)
	})
}
