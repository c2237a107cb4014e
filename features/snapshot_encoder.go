package features

import (
	"math"
	"slices"

	"github.com/streamprofile/streamprofile/stream"
)

// sortedDefIDs are the IDs of Defs in the byte order of their names (the
// order of sortedDefNames and sortedDefKeys).
var sortedDefIDs = func() []ID {
	ids := make([]ID, len(sortedDefNames))
	for i, n := range sortedDefNames {
		ids[i], _ = Lookup(n)
	}
	return ids
}()

// sortedDims are the indexes of Dims in the byte order of their names, with
// each name encoded as a JSON object key: the order encoding/json writes a
// Tokens map in.
var sortedDims, sortedDimKeys = func() ([]int, [][]byte) {
	idx := make([]int, len(Dims))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case Dims[a] < Dims[b]:
			return -1
		case Dims[a] > Dims[b]:
			return 1
		}
		return 0
	})
	keys := make([][]byte, len(idx))
	for i, d := range idx {
		keys[i] = append(appendJSONString(nil, Dims[d]), ':')
	}
	return idx, keys
}()

// SnapshotEncoder writes snapshot message values straight from a user's
// state, without building the Snapshot (no feature map, no token lists):
// the snapshot stage's hot path. Its scratch space is reused from call to
// call, so a SnapshotEncoder is not safe for concurrent use; the zero value
// is ready to use.
type SnapshotEncoder struct {
	top    [len(Dims)][]int32 // scratch: top-K entry indexes per dimension
	recent []string           // scratch: the recent items
}

// Append appends the message value of the snapshot of st right after ev
// was applied: byte for byte what
//
//	s := NewSnapshot(ev, user, st, cfg, src)
//	s.Encode()
//
// returns (and the same error, leaving b unchanged, when that fails).
func (e *SnapshotEncoder) Append(b []byte, ev *stream.Event, user string, st *State, cfg *Config, src SnapshotSource) ([]byte, error) {
	orig := b
	fail := func(err error) ([]byte, error) { return orig, err }
	// Every field but features, tokens and recent_items as Encode writes it.
	head := snapshotHead(ev, user, st, src)
	b, err := head.appendJSONHead(b)
	if err != nil {
		return fail(err)
	}
	if ev.Type == stream.TypeConsent {
		// Consent flags only: nothing derived (see Snapshot).
		b = append(b, `,"features":{}`...)
		if b, err = head.appendJSONTail(b); err != nil {
			return fail(err)
		}
		return b, nil
	}

	var v Vector
	t := ev.TS.UnixMilli()
	st.evaluate(t, cfg, &v)
	b = append(b, `,"features":{`...)
	for i, id := range sortedDefIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, sortedDefKeys[i]...)
		if b, err = appendJSONFloat(b, v[id]); err != nil {
			return fail(err)
		}
	}
	b = append(b, '}')

	n := 0
	for i := range st.Aff {
		e.top[i] = st.Aff[i].topIndexes(e.top[i][:0], cfg.TopK)
		n += len(e.top[i])
	}
	if n > 0 {
		b = append(b, `,"tokens":{`...)
		first := true
		for i, d := range sortedDims {
			top := e.top[d]
			if len(top) == 0 {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, sortedDimKeys[i]...)
			b = append(b, '[')
			for j, x := range top {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, st.Aff[d].Entries[x].Name)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if ev.Type == stream.TypeView && ev.ItemID != "" {
		e.recent = st.AppendRecentBefore(e.recent[:0], ev.ItemID)
		b = appendJSONRecent(b, e.recent)
	}
	if b, err = head.appendJSONTail(b); err != nil {
		return fail(err)
	}
	return b, nil
}

// topIndexes appends to dst the indexes of a's k strongest entries,
// strongest first (ties: smaller name first): the order of top. It selects
// by insertion into the k best seen so far, which for the usual k (5) of
// at most MaxAffinityEntries entries beats sorting them all.
func (a *affinity) topIndexes(dst []int32, k int) []int32 {
	k = min(k, len(a.Entries))
	if k <= 0 {
		return dst
	}
	base := len(dst)
	ents := a.Entries
	before := func(x, y int32) bool { // x ranks before y
		ex, ey := &ents[x], &ents[y]
		if ex.W != ey.W {
			return ex.W > ey.W
		}
		return ex.Name < ey.Name
	}
	if k > maxInsertionTopK {
		for i := range ents {
			dst = append(dst, int32(i))
		}
		slices.SortFunc(dst[base:], func(x, y int32) int {
			switch {
			case before(x, y):
				return -1
			case before(y, x):
				return 1
			}
			return 0
		})
		return dst[:base+k]
	}
	for i := range ents {
		x := int32(i)
		best := dst[base:]
		if len(best) == k {
			if !before(x, best[k-1]) {
				continue
			}
			best = best[:k-1]
			dst = dst[:base+k-1]
		}
		// Insert x after every index that ranks before it.
		j := len(best)
		for j > 0 && before(x, best[j-1]) {
			j--
		}
		dst = append(dst, 0)
		best = dst[base:]
		copy(best[j+1:], best[j:])
		best[j] = x
	}
	return dst
}

// maxInsertionTopK is the largest k topIndexes selects by insertion; past
// it, sorting every entry is cheaper.
const maxInsertionTopK = 16

// fastInt reports whether f is an integer that encoding/json writes as
// its decimal digits (|f| < 2^53, not −0): every such value is exact and
// its shortest round-trip form is the integer itself.
func fastInt(f float64) bool {
	return f == math.Trunc(f) && math.Abs(f) < 1<<53 && (f != 0 || !math.Signbit(f))
}
