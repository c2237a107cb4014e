package scorer

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Limits on decoded sizes: far above what the scorer writes, so that a
// corrupt value cannot make a decoder allocate without bound.
const (
	maxDecodedString = 4096
	maxDecodedList   = 1 << 20
)

// enc appends primitive values.
type enc struct{ b []byte }

func (e *enc) byte1(x byte)  { e.b = append(e.b, x) }
func (e *enc) uv(x uint64)   { e.b = binary.AppendUvarint(e.b, x) }
func (e *enc) v(x int64)     { e.b = binary.AppendVarint(e.b, x) }
func (e *enc) f64(x float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(x)) }
func (e *enc) f32(x float64) {
	e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(float32(x)))
}
func (e *enc) str(s string) { e.uv(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) strs(s []string) {
	e.uv(uint64(len(s)))
	for _, x := range s {
		e.str(x)
	}
}

// dec reads what enc wrote. The first error sticks; every read after it
// returns zero values, so a decoder checks err once at the end.
type dec struct {
	b   []byte
	off int
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrCorrupt, what, d.off)
	}
}

func (d *dec) byte1() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.fail("truncated byte")
		return 0
	}
	x := d.b[d.off]
	d.off++
	return x
}

func (d *dec) uv() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return x
}

func (d *dec) v() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return x
}

func (d *dec) f64() float64 {
	if d.err != nil || len(d.b)-d.off < 8 {
		d.fail("truncated float64")
		return 0
	}
	x := math.Float64frombits(binary.LittleEndian.Uint64(d.b[d.off:]))
	d.off += 8
	return x
}

func (d *dec) f32() float64 {
	if d.err != nil || len(d.b)-d.off < 4 {
		d.fail("truncated float32")
		return 0
	}
	x := float64(math.Float32frombits(binary.LittleEndian.Uint32(d.b[d.off:])))
	d.off += 4
	return x
}

// n reads a count, at most limit.
func (d *dec) n(limit int) int {
	x := d.uv()
	if x > uint64(limit) {
		d.fail(fmt.Sprintf("count %d above %d", x, limit))
		return 0
	}
	return int(x)
}

func (d *dec) str() string {
	l := d.n(maxDecodedString)
	if d.err != nil {
		return ""
	}
	if len(d.b)-d.off < l {
		d.fail("truncated string")
		return ""
	}
	s := string(d.b[d.off : d.off+l])
	d.off += l
	return s
}

func (d *dec) strs(limit int) []string {
	n := d.n(limit)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, min(n, len(d.b)-d.off))
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.str())
	}
	return out
}

// finite fails on NaN or ±Inf where only finite numbers are written.
func (d *dec) finite(x float64, what string) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		d.fail("non-finite " + what)
		return 0
	}
	return x
}

// end fails when bytes are left over.
func (d *dec) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)-d.off))
	}
	return d.err
}
