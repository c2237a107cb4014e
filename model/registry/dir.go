package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// DirBackend stores the registry in a directory:
//
//	meta.json                 Meta
//	versions/<n>.json         Version
//	versions/<n>.model        model bytes
//	versions/<n>.state        trainer state (optional)
//	lock                      flock(2) lock serialising writers
//
// Every file is written to a temporary name, synced and renamed, so readers
// never see a partial file; meta.json is written last and is the commit
// point (files of a version number above meta.Latest are leftovers of a
// crashed Create and are overwritten by the next one). Writers in several
// processes on one host exclude each other with flock; the directory must
// not be shared over a network file system without working flock.
type DirBackend struct {
	dir string
}

// NewDirBackend returns a backend in dir, creating it if needed.
func NewDirBackend(dir string) (*DirBackend, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty registry directory", ErrInvalidConfig)
	}
	if err := os.MkdirAll(filepath.Join(dir, "versions"), 0o755); err != nil {
		return nil, err
	}
	return &DirBackend{dir: dir}, nil
}

func (d *DirBackend) path(n int64, ext string) string {
	return filepath.Join(d.dir, "versions", strconv.FormatInt(n, 10)+ext)
}

func (d *DirBackend) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(d.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// writeFile writes b to path atomically (temp file, fsync, rename).
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func (d *DirBackend) readMeta() (Meta, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, "meta.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return Meta{}, nil
	}
	if err != nil {
		return Meta{}, err
	}
	return decodeMeta(b)
}

// Meta implements Backend.
func (d *DirBackend) Meta(ctx context.Context) (Meta, error) { return d.readMeta() }

// Create implements Backend.
func (d *DirBackend) Create(ctx context.Context, v Version, model, state []byte) (int64, error) {
	var n int64
	err := d.update(func(tx *txView) error {
		m := tx.Meta()
		n = m.Latest + 1
		m.Latest = n
		v.Number = n
		v.ModelBytes = len(model)
		vb, err := json.Marshal(&v)
		if err != nil {
			return err
		}
		if err := writeFile(d.path(n, ".model"), model); err != nil {
			return err
		}
		if state != nil {
			if err := writeFile(d.path(n, ".state"), state); err != nil {
				return err
			}
		} else if err := os.Remove(d.path(n, ".state")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return writeFile(d.path(n, ".json"), vb)
	})
	return n, err
}

func (d *DirBackend) update(fn func(tx *txView) error) error {
	unlock, err := d.lock()
	if err != nil {
		return err
	}
	defer unlock()
	meta, err := d.readMeta()
	if err != nil {
		return err
	}
	view := &txView{meta: meta, changed: map[int64]*Version{}, load: func(n int64) (Version, error) {
		if n < 1 || n > meta.Latest {
			return Version{}, fmt.Errorf("%w: %d", ErrNotFound, n)
		}
		return d.get(n)
	}}
	if err := fn(view); err != nil {
		return err
	}
	for n, v := range view.changed {
		vb, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := writeFile(d.path(n, ".json"), vb); err != nil {
			return err
		}
	}
	view.meta.Revision++
	mb, err := json.Marshal(&view.meta)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(d.dir, "meta.json"), mb)
}

// Update implements Backend.
func (d *DirBackend) Update(ctx context.Context, fn func(tx Tx) error) error {
	return d.update(func(tx *txView) error { return fn(tx) })
}

func (d *DirBackend) get(n int64) (Version, error) {
	b, err := os.ReadFile(d.path(n, ".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return Version{}, fmt.Errorf("%w: %d", ErrNotFound, n)
	}
	if err != nil {
		return Version{}, err
	}
	return decodeVersion(b)
}

func (d *DirBackend) committed(n int64) error {
	m, err := d.readMeta()
	if err != nil {
		return err
	}
	if n < 1 || n > m.Latest {
		return fmt.Errorf("%w: %d", ErrNotFound, n)
	}
	return nil
}

// Get implements Backend.
func (d *DirBackend) Get(ctx context.Context, n int64) (Version, error) {
	if err := d.committed(n); err != nil {
		return Version{}, err
	}
	return d.get(n)
}

// Model implements Backend.
func (d *DirBackend) Model(ctx context.Context, n int64) ([]byte, error) {
	if err := d.committed(n); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.path(n, ".model"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: version %d has no model file", ErrCorrupt, n)
	}
	return b, err
}

// State implements Backend.
func (d *DirBackend) State(ctx context.Context, n int64) ([]byte, error) {
	if err := d.committed(n); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.path(n, ".state"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// SetState implements Backend.
func (d *DirBackend) SetState(ctx context.Context, n int64, state []byte, fn func(m *Meta)) error {
	return d.update(func(tx *txView) error {
		if _, err := tx.load(n); err != nil {
			return err
		}
		if fn != nil {
			fn(tx.Meta())
		}
		if state != nil {
			return writeFile(d.path(n, ".state"), state)
		}
		if err := os.Remove(d.path(n, ".state")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

// List implements Backend.
func (d *DirBackend) List(ctx context.Context) ([]Version, error) {
	m, err := d.readMeta()
	if err != nil {
		return nil, err
	}
	out := make([]Version, 0, m.Latest)
	for n := int64(1); n <= m.Latest; n++ {
		v, err := d.get(n)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Close implements Backend.
func (d *DirBackend) Close() error { return nil }
