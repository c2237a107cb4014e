package segment

import (
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"
)

// Membership is the set of segments a user is in, each with the time the
// user entered it. The zero value is the empty set. A Membership is
// immutable: Evaluate returns a new one and never changes its argument.
type Membership struct {
	e []member // sorted by name, unique
}

type member struct {
	name string
	at   int64 // entered at, unix milliseconds
}

// NewMembership builds a Membership from segment names and entry times
// (kept to the millisecond). It is meant for tests and tools; names must be
// valid segment names and at most MaxSegments.
func NewMembership(entered map[string]time.Time) (Membership, error) {
	if len(entered) > MaxSegments {
		return Membership{}, fmt.Errorf("%w: %d segments, more than %d", ErrTooLarge, len(entered), MaxSegments)
	}
	m := Membership{e: make([]member, 0, len(entered))}
	for name, at := range entered {
		if !validSegmentName(name) {
			return Membership{}, fmt.Errorf("%w: invalid segment name %q", ErrInvalid, name)
		}
		m.e = append(m.e, member{name: name, at: at.UnixMilli()})
	}
	slices.SortFunc(m.e, func(a, b member) int { return strings.Compare(a.name, b.name) })
	return m, nil
}

// Len returns the number of segments.
func (m Membership) Len() int { return len(m.e) }

func (m Membership) find(name string) (int, bool) {
	return slices.BinarySearchFunc(m.e, name, func(x member, n string) int { return strings.Compare(x.name, n) })
}

// Has reports whether the user is in the segment.
func (m Membership) Has(segment string) bool {
	_, ok := m.find(segment)
	return ok
}

// EnteredAt returns when the user entered the segment.
func (m Membership) EnteredAt(segment string) (time.Time, bool) {
	i, ok := m.find(segment)
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(m.e[i].at).UTC(), true
}

// Segments returns the segment names in lexical order.
func (m Membership) Segments() []string {
	out := make([]string, len(m.e))
	for i, x := range m.e {
		out[i] = x.name
	}
	return out
}

// All yields each segment and its entry time, in name order.
func (m Membership) All() iter.Seq2[string, time.Time] {
	return func(yield func(string, time.Time) bool) {
		for _, x := range m.e {
			if !yield(x.name, time.UnixMilli(x.at).UTC()) {
				return
			}
		}
	}
}

// Equal reports whether both hold the same segments with the same times.
func (m Membership) Equal(o Membership) bool { return slices.Equal(m.e, o.e) }

// String lists name@RFC3339 entries.
func (m Membership) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, x := range m.e {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.name)
		b.WriteByte('@')
		b.WriteString(time.UnixMilli(x.at).UTC().Format(time.RFC3339Nano))
	}
	b.WriteByte('}')
	return b.String()
}

// membershipFormat is the first byte of an encoded Membership.
const membershipFormat = 1

// AppendBinary appends the encoding of m to b:
//
//	format byte (1)
//	uvarint count
//	count × { uvarint len(name), name, varint entered_at (unix ms) }
//
// with names in strictly increasing order and every varint minimal, so
// that each Membership has exactly one encoding. An empty input also
// decodes as the empty set (a user without a stored record).
func (m Membership) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, membershipFormat)
	b = binary.AppendUvarint(b, uint64(len(m.e)))
	for _, x := range m.e {
		b = binary.AppendUvarint(b, uint64(len(x.name)))
		b = append(b, x.name...)
		b = binary.AppendVarint(b, x.at)
	}
	return b, nil
}

// MarshalBinary encodes m; see AppendBinary.
func (m Membership) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, 2+len(m.e)*24))
}

// UnmarshalBinary decodes the output of MarshalBinary, or an empty input as
// the empty set. Any other input is rejected with an error wrapping
// ErrCorrupt.
func (m *Membership) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		*m = Membership{}
		return nil
	}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	if b[0] != membershipFormat {
		return corrupt("unknown format %d", b[0])
	}
	d := decoder{b: b, off: 1}
	n, ok := d.uvarint()
	if !ok {
		return corrupt("bad count at byte %d", d.off)
	}
	if n > MaxSegments {
		return corrupt("%d segments, more than %d", n, MaxSegments)
	}
	e := make([]member, 0, n)
	for i := uint64(0); i < n; i++ {
		l, ok := d.uvarint()
		if !ok || l == 0 || l > MaxNameLen || uint64(len(b)-d.off) < l {
			return corrupt("bad name length at byte %d", d.off)
		}
		name := string(b[d.off : d.off+int(l)])
		if !validSegmentName(name) {
			return corrupt("invalid segment name %q", name)
		}
		if i > 0 && name <= e[i-1].name {
			return corrupt("segment %q out of order", name)
		}
		d.off += int(l)
		at, ok := d.varint()
		if !ok {
			return corrupt("bad time at byte %d", d.off)
		}
		e = append(e, member{name: name, at: at})
	}
	if d.off != len(b) {
		return corrupt("%d trailing bytes", len(b)-d.off)
	}
	*m = Membership{e: e}
	return nil
}

type decoder struct {
	b   []byte
	off int
}

// uvarint reads a minimally encoded uvarint.
func (d *decoder) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 || n != uvarintLen(v) {
		return 0, false
	}
	d.off += n
	return v, true
}

// varint reads a minimally encoded zig-zag varint.
func (d *decoder) varint() (int64, bool) {
	u, ok := d.uvarint()
	if !ok {
		return 0, false
	}
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v, true
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
