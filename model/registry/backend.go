package registry

import "context"

// Backend stores versions durably. Implementations: RedisBackend and
// DirBackend. Every method is safe for concurrent use, also from several
// processes (a trainer and the `model` CLI).
type Backend interface {
	// Create stores v as version meta.Latest+1 with its model bytes and
	// trainer state (state may be nil), atomically with the meta record,
	// and returns the number given.
	Create(ctx context.Context, v Version, model, state []byte) (int64, error)
	// Get returns version n (ErrNotFound).
	Get(ctx context.Context, n int64) (Version, error)
	// Model returns version n's model bytes (ErrNotFound).
	Model(ctx context.Context, n int64) ([]byte, error)
	// State returns version n's trainer state (nil when none stored;
	// ErrNotFound when the version does not exist).
	State(ctx context.Context, n int64) ([]byte, error)
	// SetState replaces version n's trainer state (nil removes it),
	// atomically with the changes fn (may be nil) makes to the meta record.
	// ErrNotFound when the version does not exist.
	SetState(ctx context.Context, n int64, state []byte, fn func(m *Meta)) error
	// List returns every version in number order.
	List(ctx context.Context) ([]Version, error)
	// Meta returns the meta record (zero when the registry is empty).
	Meta(ctx context.Context) (Meta, error)
	// Update runs fn on a consistent view and commits what fn changed
	// atomically: the meta record and the versions obtained through
	// Tx.Version. If fn returns an error nothing is written. fn may run
	// more than once (optimistic concurrency).
	Update(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the backend.
	Close() error
}

// Tx is a read-modify-write view of the registry inside Backend.Update.
type Tx interface {
	// Meta returns the meta record, to modify in place.
	Meta() *Meta
	// Version returns version n, to modify in place (ErrNotFound).
	Version(n int64) (*Version, error)
}

// txView is the Tx implementation shared by the backends.
type txView struct {
	meta    Meta
	load    func(n int64) (Version, error)
	changed map[int64]*Version
}

func (t *txView) Meta() *Meta { return &t.meta }

func (t *txView) Version(n int64) (*Version, error) {
	if v, ok := t.changed[n]; ok {
		return v, nil
	}
	v, err := t.load(n)
	if err != nil {
		return nil, err
	}
	t.changed[n] = &v
	return &v, nil
}
