package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// stateFormat is the version byte of the binary state encoding. Format 1
// (before State.Recent) still decodes, with no recent views.
const (
	stateFormat   = 2
	stateFormatV1 = 1
)

// Limits on decoded collection sizes, far above what the config allows, so a
// corrupt value cannot make the decoder allocate without bound.
const (
	maxDecodedList = 1 << 20
	maxDecodedName = 4096
)

// ErrCorruptState is returned (wrapped) for a state value that cannot be
// decoded.
var ErrCorruptState = errors.New("features: corrupt state")

// MarshalBinary encodes the state compactly (varints, delta-coded sorted
// sets).
func (s *State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 256))
}

// AppendBinary appends the encoding of s to b.
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateFormat)
	for _, v := range [...]int64{s.Views, s.Carts, s.Removes, s.Purchases, s.Searches, s.Reviews, s.Units,
		s.RevenueMicros, s.ViewPriceMicros, s.ViewPriceN, s.FirstSeenMs, s.LastSeenMs, s.LastPurchaseMs,
		s.SessionsDone, s.CartSessionsDone, s.AbandonDone, s.ConsentMs,
		s.PurchaseDays, s.FirstPurchaseDay, s.LastPurchaseDay, s.FirstDayRevenueMicros} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Days)))
	var prevDay int64
	for _, d := range s.Days {
		b = binary.AppendVarint(b, d-prevDay)
		prevDay = d
	}
	var flags byte
	if s.ProfilingOff {
		flags |= 1
	}
	if s.AdsOff {
		flags |= 2
	}
	b = append(b, flags)
	for _, w := range [...]window{s.Views1m, s.Views24m, s.Views168m, s.Carts24m, s.Purchases12h, s.Revenue12h} {
		b = binary.AppendUvarint(b, uint64(len(w)))
		var prev int64
		for _, x := range w {
			b = binary.AppendVarint(b, x.Idx-prev)
			b = binary.AppendVarint(b, x.Val)
			prev = x.Idx
		}
	}
	for _, d := range s.Activity {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.V))
		b = binary.AppendVarint(b, d.Ref)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Sessions)))
	for _, x := range s.Sessions {
		b = binary.LittleEndian.AppendUint64(b, x.Key)
		b = binary.AppendVarint(b, x.Start)
		b = binary.AppendVarint(b, x.End-x.Start)
		b = append(b, x.Flags)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Items)))
	var prev uint64
	for _, h := range s.Items {
		b = binary.AppendUvarint(b, h-prev)
		prev = h
	}
	for _, a := range s.Aff {
		b = binary.AppendVarint(b, a.Base)
		b = binary.AppendUvarint(b, uint64(len(a.Entries)))
		for _, e := range a.Entries {
			b = binary.AppendUvarint(b, uint64(e.Bucket))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.W))
			b = binary.AppendUvarint(b, uint64(len(e.Name)))
			b = append(b, e.Name...)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.Seen)))
	prev = 0
	for _, x := range s.Seen {
		b = binary.AppendUvarint(b, x.H-prev)
		b = binary.AppendVarint(b, x.Ts)
		prev = x.H
	}
	b = binary.AppendUvarint(b, uint64(len(s.Linked)))
	for _, l := range s.Linked {
		b = binary.AppendUvarint(b, uint64(len(l)))
		b = append(b, l...)
	}
	b = binary.AppendUvarint(b, uint64(len(s.MergedInto)))
	b = append(b, s.MergedInto...)
	b = binary.AppendUvarint(b, uint64(s.MergedRoute))
	b = binary.AppendUvarint(b, uint64(len(s.Recent)))
	var prevTs int64
	for _, v := range s.Recent {
		b = binary.AppendUvarint(b, uint64(len(v.Item)))
		b = append(b, v.Item...)
		b = binary.AppendVarint(b, v.Ts-prevTs)
		prevTs = v.Ts
	}
	return b, nil
}

// UnmarshalBinary decodes a state written by MarshalBinary. Corrupt input
// yields an error wrapping ErrCorruptState, never a panic.
func (s *State) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	format := r.byte()
	if format != stateFormat && format != stateFormatV1 {
		if r.err != nil {
			return r.err
		}
		return fmt.Errorf("%w: unknown format %d", ErrCorruptState, format)
	}
	var n State
	for _, p := range [...]*int64{&n.Views, &n.Carts, &n.Removes, &n.Purchases, &n.Searches, &n.Reviews, &n.Units,
		&n.RevenueMicros, &n.ViewPriceMicros, &n.ViewPriceN, &n.FirstSeenMs, &n.LastSeenMs, &n.LastPurchaseMs,
		&n.SessionsDone, &n.CartSessionsDone, &n.AbandonDone, &n.ConsentMs,
		&n.PurchaseDays, &n.FirstPurchaseDay, &n.LastPurchaseDay, &n.FirstDayRevenueMicros} {
		*p = r.varint()
	}
	if k := r.count(); k > 0 {
		n.Days = make([]int64, k)
		var prev int64
		for i := range n.Days {
			prev += r.varint()
			n.Days[i] = prev
		}
	}
	flags := r.byte()
	n.ProfilingOff, n.AdsOff = flags&1 != 0, flags&2 != 0
	for _, w := range [...]*window{&n.Views1m, &n.Views24m, &n.Views168m, &n.Carts24m, &n.Purchases12h, &n.Revenue12h} {
		k := r.count()
		if k > 0 {
			*w = make(window, k)
		}
		var prev int64
		for i := 0; i < k; i++ {
			prev += r.varint()
			(*w)[i] = bucket{Idx: prev, Val: r.varint()}
		}
	}
	for i := range n.Activity {
		n.Activity[i] = decayed{V: r.float(), Ref: r.varint()}
	}
	if k := r.count(); k > 0 {
		n.Sessions = make([]session, k)
		for i := range n.Sessions {
			x := session{Key: r.u64(), Start: r.varint()}
			x.End = x.Start + r.varint()
			x.Flags = r.byte()
			n.Sessions[i] = x
		}
	}
	if k := r.count(); k > 0 {
		n.Items = make([]uint64, k)
		var prev uint64
		for i := range n.Items {
			prev += r.uvarint()
			n.Items[i] = prev
		}
	}
	for d := range n.Aff {
		n.Aff[d].Base = r.varint()
		if k := r.count(); k > 0 {
			n.Aff[d].Entries = make([]affEntry, k)
			for i := range n.Aff[d].Entries {
				e := affEntry{Bucket: uint32(r.uvarint()), W: r.float()}
				e.Name = r.str()
				n.Aff[d].Entries[i] = e
			}
		}
	}
	if k := r.count(); k > 0 {
		n.Seen = make([]seenID, k)
		var prev uint64
		for i := range n.Seen {
			prev += r.uvarint()
			n.Seen[i] = seenID{H: prev, Ts: r.varint()}
		}
	}
	if k := r.count(); k > 0 {
		n.Linked = make([]string, k)
		for i := range n.Linked {
			n.Linked[i] = r.str()
		}
	}
	n.MergedInto = r.str()
	if v := r.uvarint(); v <= math.MaxUint32 {
		n.MergedRoute = uint32(v)
	} else {
		r.fail("route")
	}
	if format >= 2 {
		k := r.count()
		if k > RecentViews+1 {
			r.fail("recent views")
			k = 0
		}
		if k > 0 {
			n.Recent = make([]RecentView, k, recentCap)
			var prev int64
			for i := range n.Recent {
				n.Recent[i].Item = r.str()
				prev += r.varint()
				n.Recent[i].Ts = prev
				if i > 0 && r.err == nil && !recentBefore(n.Recent[i-1], n.Recent[i]) {
					r.fail("recent views order")
				}
			}
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorruptState, len(r.b))
	}
	*s = n
	return nil
}

// reader is a sticky-error cursor over an encoded state.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or invalid %s", ErrCorruptState, what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("byte")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail("uint64")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) float() float64 {
	f := math.Float64frombits(r.u64())
	if math.IsNaN(f) || math.IsInf(f, 0) {
		r.fail("float")
		return 0
	}
	return f
}

// count reads a collection length and checks it against both the sanity
// limit and the bytes left (every element takes at least one byte).
func (r *reader) count() int {
	v := r.uvarint()
	if r.err != nil {
		return 0
	}
	if v > maxDecodedList || v > uint64(len(r.b)) {
		r.fail("length")
		return 0
	}
	return int(v)
}

func (r *reader) str() string {
	v := r.uvarint()
	if r.err != nil {
		return ""
	}
	if v > maxDecodedName || v > uint64(len(r.b)) {
		r.fail("string")
		return ""
	}
	s := string(r.b[:v])
	r.b = r.b[v:]
	return s
}
