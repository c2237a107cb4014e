package bench

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// pprofData is the part of a pprof profile (profile.proto) needed to rank
// functions: the stacks of the samples as function names, leaf first, and
// the sample values.
type pprofData struct {
	types   []string  // sample value types, e.g. "samples", "cpu"
	stacks  [][]int64 // function ids, leaf first
	values  [][]int64
	funcs   map[uint64]string
	strings []string
}

var errPprof = errors.New("bench: malformed pprof profile")

// readPprof parses a gzipped (or plain) pprof profile.
func readPprof(b []byte) (*pprofData, error) {
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if b, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	type loc struct{ funcs []uint64 }
	type sample struct {
		locs   []uint64
		values []int64
	}
	var (
		samples   []sample
		locs      = map[uint64]loc{}
		funcNames = map[uint64]int64{}
		typeIdx   []int64
		strs      []string
	)
	err := pbFields(b, func(f int, wt int, v uint64, data []byte) error {
		switch f {
		case 1: // sample_type
			return pbFields(data, func(f, wt int, v uint64, _ []byte) error {
				if f == 1 {
					typeIdx = append(typeIdx, int64(v))
				}
				return nil
			})
		case 2: // sample
			var s sample
			err := pbFields(data, func(f, wt int, v uint64, d []byte) error {
				switch f {
				case 1:
					return pbRepeated(wt, v, d, func(x uint64) { s.locs = append(s.locs, x) })
				case 2:
					return pbRepeated(wt, v, d, func(x uint64) { s.values = append(s.values, int64(x)) })
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case 4: // location
			var id uint64
			var l loc
			err := pbFields(data, func(f, wt int, v uint64, d []byte) error {
				switch f {
				case 1:
					id = v
				case 4: // line
					return pbFields(d, func(f, wt int, v uint64, _ []byte) error {
						if f == 1 {
							l.funcs = append(l.funcs, v)
						}
						return nil
					})
				}
				return nil
			})
			locs[id] = l
			return err
		case 5: // function
			var id uint64
			var name int64
			err := pbFields(data, func(f, wt int, v uint64, _ []byte) error {
				switch f {
				case 1:
					id = v
				case 2:
					name = int64(v)
				}
				return nil
			})
			funcNames[id] = name
			return err
		case 6: // string_table
			strs = append(strs, string(data))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p := &pprofData{funcs: map[uint64]string{}, strings: strs}
	str := func(i int64) string {
		if i >= 0 && int(i) < len(strs) {
			return strs[i]
		}
		return "?"
	}
	for _, i := range typeIdx {
		p.types = append(p.types, str(i))
	}
	for id, n := range funcNames {
		p.funcs[id] = str(n)
	}
	for _, s := range samples {
		var st []int64
		for _, l := range s.locs {
			// A location's lines list inlined functions, innermost first.
			for _, f := range locs[l].funcs {
				st = append(st, int64(f))
			}
		}
		p.stacks = append(p.stacks, st)
		p.values = append(p.values, s.values)
	}
	return p, nil
}

// pbFields calls fn for each field of a protobuf message: varints with v,
// length-delimited fields with data.
func pbFields(b []byte, fn func(field, wireType int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errPprof
		}
		b = b[n:]
		field, wt := int(key>>3), int(key&7)
		var v uint64
		var data []byte
		switch wt {
		case 0:
			v, n = binary.Uvarint(b)
			if n <= 0 {
				return errPprof
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errPprof
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errPprof
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errPprof
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return errPprof
		}
		if err := fn(field, wt, v, data); err != nil {
			return err
		}
	}
	return nil
}

// pbRepeated decodes a repeated varint field, packed or not.
func pbRepeated(wt int, v uint64, data []byte, add func(uint64)) error {
	if wt == 0 {
		add(v)
		return nil
	}
	for len(data) > 0 {
		x, n := binary.Uvarint(data)
		if n <= 0 {
			return errPprof
		}
		add(x)
		data = data[n:]
	}
	return nil
}

// valueIndex returns the index of the sample values of type valueType (the
// last such type), or -1.
func (p *pprofData) valueIndex(valueType string) int {
	vi := -1
	for i, t := range p.types {
		if t == valueType {
			vi = i
		}
	}
	return vi
}

// top ranks functions by the sample value of type valueType: flat (leaf)
// and cumulative (anywhere on the stack) shares in percent, by flat share.
func (p *pprofData) top(valueType string, n int) ([]FuncShare, error) {
	vi := p.valueIndex(valueType)
	if vi < 0 {
		return nil, fmt.Errorf("%w: no %q values (have %v)", errPprof, valueType, p.types)
	}
	flat, cum := map[string]int64{}, map[string]int64{}
	var total int64
	for i, st := range p.stacks {
		if vi >= len(p.values[i]) || len(st) == 0 {
			continue
		}
		v := p.values[i][vi]
		total += v
		flat[p.funcs[uint64(st[0])]] += v
		seen := map[string]bool{}
		for _, f := range st {
			name := p.funcs[uint64(f)]
			if !seen[name] {
				seen[name] = true
				cum[name] += v
			}
		}
	}
	if total == 0 {
		return nil, nil
	}
	out := make([]FuncShare, 0, len(cum))
	for name, c := range cum {
		out = append(out, FuncShare{Func: name, FlatPct: 100 * float64(flat[name]) / float64(total),
			CumPct: 100 * float64(c) / float64(total)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].FlatPct != out[j].FlatPct {
			return out[i].FlatPct > out[j].FlatPct
		}
		return out[i].Func < out[j].Func
	})
	return out[:min(n, len(out))], nil
}

// profileAreas are the parts of the ingest path a CPU profile is broken
// down into: a sample counts for an area when any frame's function starts
// with one of its prefixes (so areas overlap: snapshot encoding is also
// under the processor).
var profileAreas = []struct{ name, prefixes string }{
	{"kafka-go fetch (reader goroutines)", "github.com/segmentio/kafka-go.(*reader).run"},
	{"decode (stream.Decoder.Decode)", "github.com/streamprofile/streamprofile/stream.(*Decoder).Decode"},
	{"PII masking (privacy)", "github.com/streamprofile/streamprofile/privacy."},
	{"features.State.Apply", "github.com/streamprofile/streamprofile/features.(*State).Apply"},
	{"snapshot build + JSON (features.SnapshotEncoder; NewSnapshot + Encode elsewhere)", "github.com/streamprofile/streamprofile/features.(*SnapshotEncoder)|github.com/streamprofile/streamprofile/features.NewSnapshot|github.com/streamprofile/streamprofile/features.(*Snapshot).Encode"},
	{"snapshot produce (Producer.Send + kafka-go writer)", "github.com/streamprofile/streamprofile/stream.(*Producer).Send|github.com/segmentio/kafka-go.(*partitionWriter)|github.com/segmentio/kafka-go.(*writeBatch)|github.com/segmentio/kafka-go.(*Writer)"},
	{"state encode (MarshalBinary)", "github.com/streamprofile/streamprofile/features.(*State).MarshalBinary|github.com/streamprofile/streamprofile/features.(*State).AppendBinary"},
	{"state decode (UnmarshalBinary)", "github.com/streamprofile/streamprofile/features.(*State).UnmarshalBinary"},
	{"Redis flush (Store.Write)", "github.com/streamprofile/streamprofile/features.(*Store).Write"},
	{"Redis load (Store.Load)", "github.com/streamprofile/streamprofile/features.(*Store).Load"},
	{"garbage collection (background)", "runtime.gcBgMarkWorker"},
	{"allocation (mallocgc)", "runtime.mallocgc"},
	{"system calls", "syscall.Syscall|syscall.RawSyscall|internal/runtime/syscall.Syscall6|runtime/internal/syscall.Syscall6"},
}

// areas returns the cumulative share of each profileAreas entry.
func (p *pprofData) areas(valueType string) []FuncShare {
	vi := p.valueIndex(valueType)
	if vi < 0 {
		return nil
	}
	sums := make([]int64, len(profileAreas))
	var total int64
	for i, st := range p.stacks {
		if vi >= len(p.values[i]) {
			continue
		}
		v := p.values[i][vi]
		total += v
		for a, area := range profileAreas {
			for _, f := range st {
				if hasAnyPrefix(p.funcs[uint64(f)], area.prefixes) {
					sums[a] += v
					break
				}
			}
		}
	}
	out := make([]FuncShare, len(profileAreas))
	for a, area := range profileAreas {
		out[a] = FuncShare{Func: area.name}
		if total > 0 {
			out[a].CumPct = 100 * float64(sums[a]) / float64(total)
		}
	}
	return out
}

func hasAnyPrefix(s, prefixes string) bool {
	for _, p := range strings.Split(prefixes, "|") {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// summarizeProfiles reads the CPU and allocation profiles written by a
// profiled run.
func summarizeProfiles(outDir, cpuPath, allocPath string) (*Profile, error) {
	rel := func(p string) string {
		if r, err := filepath.Rel(outDir, p); err == nil {
			return r
		}
		return p
	}
	out := &Profile{CPU: rel(cpuPath), Allocs: rel(allocPath)}
	b, err := os.ReadFile(cpuPath)
	if err != nil {
		return nil, err
	}
	cpu, err := readPprof(b)
	if err != nil {
		return nil, err
	}
	if out.CPUTop, err = cpu.top("cpu", 20); err != nil {
		return nil, err
	}
	out.Areas = cpu.areas("cpu")
	if b, err = os.ReadFile(allocPath); err != nil {
		return nil, err
	}
	al, err := readPprof(b)
	if err != nil {
		return nil, err
	}
	if out.AllocTop, err = al.top("alloc_space", 15); err != nil {
		return nil, err
	}
	return out, nil
}
