package nn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"reflect"
)

// Serialised model format (all integers little-endian):
//
//	magic    "SPNN"
//	version  uint16 (formatVersion)
//	flags    uint16 (0)
//	arch     see appendArch
//	steps    uint64, examples uint64
//	norm     count uint64, mean [N]float64, m2 [N]float64
//	weights  embedding tables in TokenFields order, then W and b of every
//	         dense layer (hidden layers first, heads last), as float64 bits
//	crc      uint32 CRC-32C (Castagnoli) of every preceding byte
//
// The encoding is canonical: decoding then encoding gives the same bytes.
const formatVersion = 1

var magic = [4]byte{'S', 'P', 'N', 'N'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// headerLen is magic + version + flags; trailerLen the checksum.
const (
	headerLen  = 8
	trailerLen = 4
)

// MaxEncodedSize bounds what Load reads: the largest valid encoding is well
// below it.
const MaxEncodedSize = 8*(MaxParams+2*MaxNumericFeatures) + 1<<20

// MarshalBinary encodes the model (architecture, counters, normaliser and
// weights) with a format version and checksum.
func (m *Model) MarshalBinary() ([]byte, error) {
	a := m.arch
	if len(m.layers) == 0 {
		return nil, fmt.Errorf("%w: empty model", ErrInvalidArch)
	}
	size := headerLen + 1024 + 16 + 8 + 16*len(a.NumericFeatures) + 8*a.numParams() + trailerLen
	b := make([]byte, 0, size)
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, formatVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = appendArch(b, &a)
	b = binary.LittleEndian.AppendUint64(b, m.steps)
	b = binary.LittleEndian.AppendUint64(b, m.examples)
	b = binary.LittleEndian.AppendUint64(b, m.norm.count)
	b = appendFloats(b, m.norm.mean)
	b = appendFloats(b, m.norm.m2)
	for _, t := range m.emb {
		b = appendFloats(b, t)
	}
	for _, l := range m.layers {
		b = appendFloats(b, l.w)
		b = appendFloats(b, l.b)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// Save writes MarshalBinary's encoding to w.
func (m *Model) Save(w io.Writer) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Load reads one encoded model (everything up to EOF, at most
// MaxEncodedSize bytes) from r.
func Load(r io.Reader) (*Model, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, MaxEncodedSize+1))
	if err != nil {
		return nil, fmt.Errorf("nn: reading model: %w", err)
	}
	if n > MaxEncodedSize {
		return nil, corrupt("more than %d bytes", int64(MaxEncodedSize))
	}
	m := new(Model)
	if err := m.UnmarshalBinary(buf.Bytes()); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalBinary decodes data produced by MarshalBinary into m, which must
// be a new zero Model not yet shared with other goroutines. It returns an
// error wrapping ErrCorrupt or ErrVersion for any input it cannot fully
// validate; it never panics. data is not retained.
func (m *Model) UnmarshalBinary(data []byte) error {
	if len(data) < headerLen+trailerLen {
		return corrupt("%d bytes is too short", len(data))
	}
	if !bytes.Equal(data[:4], magic[:]) {
		return corrupt("bad magic %q", data[:4])
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != formatVersion {
		return fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, v, formatVersion)
	}
	body := data[:len(data)-trailerLen]
	if want, got := binary.LittleEndian.Uint32(data[len(body):]), crc32.Checksum(body, castagnoli); want != got {
		return corrupt("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	if f := binary.LittleEndian.Uint16(data[6:]); f != 0 {
		return corrupt("unknown flags %#x", f)
	}
	d := decoder{buf: body, off: headerLen}
	arch, err := d.arch()
	if err != nil {
		return err
	}
	steps, examples, count := d.u64(), d.u64(), d.u64()
	N := len(arch.NumericFeatures)
	// Everything left is float64s whose number the architecture fixes.
	if want := 8 * (2*N + arch.numParams()); d.err == nil && len(d.buf)-d.off != want {
		return corrupt("%d bytes of weights, want %d", len(d.buf)-d.off, want)
	}
	norm := normalizer{count: count, mean: d.floats(N), m2: d.floats(N)}
	for _, v := range norm.m2 {
		if v < 0 {
			return corrupt("negative variance accumulator")
		}
	}
	emb := make([][]float64, len(arch.TokenFields))
	for f := range emb {
		emb[f] = d.floats(arch.HashBuckets * arch.EmbedDim)
	}
	dims := arch.layerDims()
	layers := make([]dense, len(dims))
	for i, dim := range dims {
		layers[i] = dense{in: dim[0], out: dim[1], w: d.floats(dim[0] * dim[1]), b: d.floats(dim[1])}
	}
	if d.err != nil {
		return d.err
	}
	if d.off != len(d.buf) {
		return corrupt("%d trailing bytes", len(d.buf)-d.off)
	}
	*m = Model{}
	nm := newModel(arch, steps, examples, norm, emb, layers)
	m.arch, m.steps, m.examples, m.norm = nm.arch, nm.steps, nm.examples, nm.norm
	m.shift, m.scale, m.emb, m.layers, m.maxWidth = nm.shift, nm.scale, nm.emb, nm.layers, nm.maxWidth
	return nil
}

func appendFloats(b []byte, fs []float64) []byte {
	for _, f := range fs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// appendArch encodes an architecture whose defaults are applied.
func appendArch(b []byte, a *Arch) []byte {
	b = appendStrings(b, a.NumericFeatures)
	b = appendStrings(b, a.TokenFields)
	b = binary.LittleEndian.AppendUint32(b, uint32(a.HashBuckets))
	b = binary.LittleEndian.AppendUint32(b, uint32(a.EmbedDim))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(a.Hidden)))
	for _, h := range a.Hidden {
		b = binary.LittleEndian.AppendUint32(b, uint32(h))
	}
	b = appendStrings(b, a.Heads)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(a.LearningRate))
	b = appendString(b, a.Optimizer)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(a.L2))
	b = binary.LittleEndian.AppendUint32(b, uint32(a.BatchSize))
	return binary.LittleEndian.AppendUint64(b, a.Seed)
}

// decoder reads little-endian fields; the first failure sticks in err and
// makes every later read return zero values.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.buf)-d.off {
		d.err = corrupt("truncated at byte %d (need %d more)", d.off, n)
		return nil
	}
	p := d.buf[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// count reads a uint32 that must not exceed limit.
func (d *decoder) count(what string, limit int) int {
	n := d.u32()
	if d.err == nil && uint64(n) > uint64(limit) {
		d.err = corrupt("%s %d exceeds %d", what, n, limit)
		return 0
	}
	return int(n)
}

func (d *decoder) str(limit int) string {
	n := d.count("string length", limit)
	return string(d.take(n))
}

func (d *decoder) strs(what string, limit int) []string {
	n := d.count(what, limit)
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]string, 0, min(n, 64))
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, d.str(MaxNameLen))
	}
	return out
}

// floats reads n finite float64s.
func (d *decoder) floats(n int) []float64 {
	p := d.take(8 * n)
	if p == nil {
		return nil
	}
	out := make([]float64, n)
	for i := range out {
		f := math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.err = corrupt("non-finite weight at byte %d", d.off-8*n+8*i)
			return nil
		}
		out[i] = f
	}
	return out
}

func (d *decoder) arch() (Arch, error) {
	var a Arch
	a.NumericFeatures = d.strs("numeric feature count", MaxNumericFeatures)
	a.TokenFields = d.strs("token field count", MaxTokenFields)
	a.HashBuckets = d.count("hash_buckets", MaxHashBuckets)
	a.EmbedDim = d.count("embed_dim", MaxEmbedDim)
	if n := d.count("hidden layer count", MaxHiddenLayers); n > 0 {
		a.Hidden = make([]int, n)
		for i := range a.Hidden {
			a.Hidden[i] = d.count("hidden width", MaxHiddenWidth)
		}
	}
	a.Heads = d.strs("head count", MaxHeads)
	a.LearningRate = math.Float64frombits(d.u64())
	a.Optimizer = d.str(16)
	a.L2 = math.Float64frombits(d.u64())
	a.BatchSize = d.count("batch_size", MaxBatchSize)
	a.Seed = d.u64()
	if d.err != nil {
		return Arch{}, d.err
	}
	// A stored architecture has its defaults applied; anything else is not
	// an encoding this package produced.
	if !reflect.DeepEqual(a, a.WithDefaults()) {
		return Arch{}, corrupt("architecture has unset fields")
	}
	if err := a.validate(); err != nil {
		return Arch{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return a, nil
}
