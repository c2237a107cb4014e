package segment_test

import (
	"bytes"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/sink/segment"
)

func TestMembershipAccessors(t *testing.T) {
	m, err := segment.NewMembership(map[string]time.Time{
		"silent":     t0.Add(1500 * time.Microsecond), // kept to the millisecond
		"high_value": t0.Add(-day),
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 2 || !m.Has("silent") || m.Has("churned") {
		t.Fatalf("Len/Has wrong: %v", m)
	}
	if got := m.Segments(); !slices.Equal(got, []string{"high_value", "silent"}) {
		t.Fatalf("Segments = %q", got)
	}
	if at, ok := m.EnteredAt("silent"); !ok || !at.Equal(t0.Add(time.Millisecond)) {
		t.Fatalf("EnteredAt = %v, %v", at, ok)
	}
	if _, ok := m.EnteredAt("churned"); ok {
		t.Fatal("EnteredAt of a non-member")
	}
	all := maps.Collect(m.All())
	if len(all) != 2 || !all["high_value"].Equal(t0.Add(-day)) {
		t.Fatalf("All = %v", all)
	}
	if want := "{high_value@2019-09-30T00:00:00Z, silent@2019-10-01T00:00:00.001Z}"; m.String() != want {
		t.Fatalf("String = %s, want %s", m, want)
	}
	if _, err := segment.NewMembership(map[string]time.Time{"Bad Name": t0}); !errors.Is(err, segment.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestMembershipEncoding(t *testing.T) {
	m, _ := segment.NewMembership(map[string]time.Time{"a": time.UnixMilli(0), "b_2": time.UnixMilli(-1), "c": time.UnixMilli(1569888000000)})
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 3, 1, 'a', 0, 3, 'b', '_', '2', 1, 1, 'c', 0x80, 0xe0, 0xee, 0xc9, 0xb0, 0x5b} // zig-zag: 0 → 0, -1 → 1, 1569888000000 → 3139776000000
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding % x\n    want % x", b, want)
	}
	var got segment.Membership
	if err := got.UnmarshalBinary(b); err != nil || !got.Equal(m) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	// Empty: the zero Membership and an absent record.
	e, _ := segment.Membership{}.MarshalBinary()
	if !bytes.Equal(e, []byte{1, 0}) {
		t.Fatalf("empty encodes as % x", e)
	}
	for _, in := range [][]byte{nil, {}, {1, 0}} {
		got := m
		if err := got.UnmarshalBinary(in); err != nil || got.Len() != 0 {
			t.Fatalf("UnmarshalBinary(% x) = %v, %v", in, got, err)
		}
	}
	// AppendBinary appends.
	if out, _ := m.AppendBinary([]byte("xy")); !bytes.Equal(out, append([]byte("xy"), want...)) {
		t.Fatalf("AppendBinary % x", out)
	}
}

func TestMembershipDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"unknown format", []byte{2, 0}, "unknown format 2"},
		{"truncated count", []byte{1}, "bad count"},
		{"non-minimal count", []byte{1, 0x80, 0}, "bad count"},
		{"too many", []byte{1, 0x81, 0x08}, "more than 1024"},
		{"truncated name length", []byte{1, 1}, "bad name length"},
		{"empty name", []byte{1, 1, 0, 0}, "bad name length"},
		{"name past the end", []byte{1, 1, 5, 'a'}, "bad name length"},
		{"name too long", append([]byte{1, 1, 65}, bytes.Repeat([]byte{'a'}, 65)...), "bad name length"},
		{"invalid name", []byte{1, 1, 1, 'A', 0}, "invalid segment name"},
		{"out of order", []byte{1, 2, 1, 'b', 0, 1, 'a', 0}, `"a" out of order`},
		{"duplicate", []byte{1, 2, 1, 'a', 0, 1, 'a', 0}, `"a" out of order`},
		{"truncated time", []byte{1, 1, 1, 'a'}, "bad time"},
		{"non-minimal time", []byte{1, 1, 1, 'a', 0x80, 0x00}, "bad time"},
		{"overlong time", []byte{1, 1, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "bad time"},
		{"trailing bytes", []byte{1, 0, 0}, "1 trailing bytes"},
	}
	for _, tt := range tests {
		var m segment.Membership
		err := m.UnmarshalBinary(tt.in)
		if !errors.Is(err, segment.ErrCorrupt) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v, want ErrCorrupt containing %q", tt.name, err, tt.msg)
		}
	}
}

func TestMembershipRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 500; i++ {
		in := map[string]time.Time{}
		for j := rng.IntN(20); j > 0; j-- {
			name := strings.Repeat(string(rune('a'+rng.IntN(26))), 1+rng.IntN(10)) + "_" + string(rune('0'+rng.IntN(10)))
			in[name] = time.UnixMilli(rng.Int64() >> rng.IntN(64))
		}
		m, err := segment.NewMembership(in)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := m.MarshalBinary()
		var got segment.Membership
		if err := got.UnmarshalBinary(b); err != nil || !got.Equal(m) {
			t.Fatalf("round trip of %v: %v, %v", m, got, err)
		}
		if m.Len() > 0 && len(b) > 2+m.Len()*(2+segment.MaxNameLen+10) {
			t.Fatalf("encoding of %d entries is %d bytes", m.Len(), len(b))
		}
	}
}
