package scorer

import "container/heap"

// dueEntry is a user's timer as it was when pushed; an entry whose user
// has since moved its timer is stale and skipped.
type dueEntry struct {
	due int64
	u   *user
}

// dueHeap orders timers by due time, then user id.
type dueHeap []dueEntry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	return h[i].due < h[j].due || h[i].due == h[j].due && h[i].u.id < h[j].u.id
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// push adds u's current timer, if it has one.
func (h *dueHeap) push(u *user) {
	if !u.gone && !u.erased && u.st.Due > 0 {
		heap.Push(h, dueEntry{u.st.Due, u})
	}
}

// popDue returns the earliest timer due at or before clock that is still
// its user's timer.
func (h *dueHeap) popDue(clock int64) (*user, int64, bool) {
	for h.Len() > 0 && (*h)[0].due <= clock {
		x := heap.Pop(h).(dueEntry)
		if x.u.gone || x.u.erased || x.u.st.Due != x.due {
			continue
		}
		return x.u, x.due, true
	}
	return nil, 0, false
}

// reset empties the heap.
func (h *dueHeap) reset() {
	clear(*h)
	*h = (*h)[:0]
}
