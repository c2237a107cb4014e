package dashboard

// ring keeps the newest n items added.
type ring[T any] struct {
	items []T
	next  int // where the next item goes once full
	full  bool
}

func newRing[T any](n int) ring[T] { return ring[T]{items: make([]T, 0, n)} }

func (r *ring[T]) add(v T) {
	if !r.full {
		r.items = append(r.items, v)
		r.full = len(r.items) == cap(r.items)
		return
	}
	r.items[r.next] = v
	r.next = (r.next + 1) % len(r.items)
}

// oldestFirst returns a copy of the items, oldest first.
func (r *ring[T]) oldestFirst() []T {
	out := make([]T, 0, len(r.items))
	out = append(out, r.items[r.next:]...)
	return append(out, r.items[:r.next]...)
}

// newestFirst returns a copy of the items, newest first.
func (r *ring[T]) newestFirst() []T {
	out := r.oldestFirst()
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
