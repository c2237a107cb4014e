package trainer

import (
	"container/heap"

	"github.com/twmb/murmur3"

	"github.com/streamprofile/streamprofile/model/nn"
)

// Tasks, indexing per-task arrays.
const (
	taskPurchase = iota
	taskRepeat
	numTasks
)

// pending is a snapshot with at least one task whose label is not known
// yet. Its inputs, arrival scores and deadlines are kept until every task
// has matured (or it is dropped).
type pending struct {
	id       string
	user     string
	part     int
	offset   int64
	ts       int64 // event time, unix ms
	day      int64 // UTC day number of ts
	ex       nn.Example
	scores   [numTasks][numModels]float64
	open     uint8 // bit t: task t pending
	deadline [numTasks]int64
	label    [numTasks]int8 // per task: labelUnknown, 0, 1 or labelDropped
	chal     int64          // version in the challenger slot when scored (0 none)
	champ    int64          // champion version when scored (0 none)
	seq      uint64
}

// Per-task label states of a pending.
const (
	labelUnknown int8 = -1
	labelDropped int8 = 2
)

// evalQueue holds one task's examples in arrival order until their labels
// are known, so that metrics are computed over examples in arrival order
// (see doc.go, "Delayed feedback").
type evalQueue struct {
	items []*pending
	head  int
}

func (q *evalQueue) push(p *pending) { q.items = append(q.items, p) }
func (q *evalQueue) len() int        { return len(q.items) - q.head }
func (q *evalQueue) front() *pending {
	if q.head == len(q.items) {
		return nil
	}
	return q.items[q.head]
}
func (q *evalQueue) pop() {
	q.items[q.head] = nil
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
}

// deadlineItem is a (pending, task) in a partition's deadline heap.
type deadlineItem struct {
	deadline int64
	p        *pending
	task     int
}

type deadlineHeap []deadlineItem

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadlineItem)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = deadlineItem{}
	*h = old[:len(old)-1]
	return it
}

func (h *deadlineHeap) push(it deadlineItem) { heap.Push(h, it) }
func (h *deadlineHeap) pop() deadlineItem    { return heap.Pop(h).(deadlineItem) }

// fifo holds pendings in creation order, for dropping the oldest. Closed
// entries are skipped lazily.
type fifo struct {
	items []*pending
	head  int
}

func (f *fifo) push(p *pending) { f.items = append(f.items, p) }

// oldestOpen pops closed entries and returns the oldest open one (nil if
// none).
func (f *fifo) oldestOpen() *pending {
	for f.head < len(f.items) {
		p := f.items[f.head]
		if p.open != 0 {
			return p
		}
		f.items[f.head] = nil
		f.head++
	}
	f.compact()
	return nil
}

func (f *fifo) compact() {
	if f.head > 1024 && f.head*2 > len(f.items) {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items = f.items[:n]
		f.head = 0
	}
}

// dedupe remembers the hashes of the last size snapshot ids.
type dedupe struct {
	set  map[uint64]struct{}
	ring []uint64
	next int
	full bool
}

func newDedupe(size int) *dedupe {
	return &dedupe{set: make(map[uint64]struct{}, size), ring: make([]uint64, size)}
}

func idHash(id string) uint64 { return murmur3.StringSum64(id) }

// seen reports whether id was added before; if not it adds it, evicting
// the oldest remembered id when full.
func (d *dedupe) seen(id string) bool {
	h := idHash(id)
	if _, ok := d.set[h]; ok {
		return true
	}
	d.add(h)
	return false
}

func (d *dedupe) add(h uint64) {
	if d.full {
		delete(d.set, d.ring[d.next])
	}
	d.ring[d.next] = h
	d.set[h] = struct{}{}
	d.next++
	if d.next == len(d.ring) {
		d.next, d.full = 0, true
	}
}

// hashes returns the remembered hashes, oldest first.
func (d *dedupe) hashes() []uint64 {
	if !d.full {
		return append([]uint64(nil), d.ring[:d.next]...)
	}
	out := make([]uint64, 0, len(d.ring))
	out = append(out, d.ring[d.next:]...)
	return append(out, d.ring[:d.next]...)
}
