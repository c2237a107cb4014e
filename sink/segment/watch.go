package segment

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and limits of WatcherConfig.
const (
	DefaultWatchInterval = 2 * time.Second
	MinWatchInterval     = 10 * time.Millisecond
)

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Path is the catalogue file. Required.
	Path string
	// Interval is the time between polls. Default 2s, at least 10ms.
	Interval time.Duration
	// Catalogue configures parsing. Default Config{} (DefaultNames).
	Catalogue Config
	// OnChange is called on Run's goroutine with each new valid catalogue
	// (not the initial one: see Watcher.Current). Required.
	OnChange func(*Catalogue)
	// OnError is called on Run's goroutine once for each new problem: an
	// invalid edit (an *Error or several joined) or a file that cannot be
	// read. The previous catalogue stays current. Default: problems are
	// dropped.
	OnError func(error)
}

func (c WatcherConfig) withDefaults() WatcherConfig {
	if c.Interval == 0 {
		c.Interval = DefaultWatchInterval
	}
	if c.OnError == nil {
		c.OnError = func(error) {}
	}
	return c
}

// Validate checks the configuration.
func (c WatcherConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Path == "":
		return fmt.Errorf("%w: watcher path is empty", ErrConfig)
	case c.Interval < MinWatchInterval:
		return fmt.Errorf("%w: watch interval %v below %v", ErrConfig, c.Interval, MinWatchInterval)
	case c.OnChange == nil:
		return fmt.Errorf("%w: watcher OnChange is nil", ErrConfig)
	}
	return c.Catalogue.Validate()
}

// Watcher hot-reloads a catalogue file. It polls the file's modification
// time and size, and when either changed, reads it and compares its
// SHA-256 with the current catalogue's; a new content is parsed and
// validated in full before it replaces the current catalogue, so an
// invalid edit is reported and changes nothing. Polling needs no
// file-system notifications and follows symbolic links, so it sees the
// atomic symlink swaps of Kubernetes ConfigMap volumes. An edit that keeps
// both size and modification time (possible only on file systems with
// coarse timestamps, within one tick) is seen at the next edit.
type Watcher struct {
	cfg WatcherConfig
	cur atomic.Pointer[Catalogue]

	mu      sync.Mutex
	stamp   fileStamp
	good    [sha256.Size]byte // digest of the current catalogue
	problem string            // last problem reported, "" when none
}

type fileStamp struct {
	mtime time.Time
	size  int64
}

// NewWatcher loads the catalogue at cfg.Path; it fails if the file cannot be
// read or is invalid.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	w := &Watcher{cfg: cfg}
	fi, err := os.Stat(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	c, err := Load(cfg.Path, cfg.Catalogue)
	if err != nil {
		return nil, err
	}
	w.stamp = fileStamp{fi.ModTime(), fi.Size()}
	w.good = c.digest
	w.cur.Store(c)
	return w, nil
}

// Current returns the catalogue in force. Safe for concurrent use.
func (w *Watcher) Current() *Catalogue { return w.cur.Load() }

// Check polls the file once. It returns the new catalogue when the file
// changed to a valid new content (also making it current), and an error
// the first time a problem appears (an invalid content, an unreadable or
// missing file); while the same problem persists it returns nil, nil. Run
// calls Check every Interval.
func (w *Watcher) Check() (*Catalogue, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fi, err := os.Stat(w.cfg.Path)
	if err != nil {
		w.stamp = fileStamp{}
		return nil, w.report(fmt.Errorf("segment: reload: %w", err))
	}
	st := fileStamp{fi.ModTime(), fi.Size()}
	if st == w.stamp {
		return nil, nil
	}
	data, err := readLimited(w.cfg.Path)
	if err != nil {
		w.stamp = fileStamp{}
		return nil, w.report(err)
	}
	w.stamp = st
	if sha256.Sum256(data) == w.good {
		w.problem = ""
		return nil, nil
	}
	c, err := Parse(w.cfg.Path, data, w.cfg.Catalogue)
	if err != nil {
		return nil, w.report(err)
	}
	w.good, w.problem = c.digest, ""
	w.cur.Store(c)
	return c, nil
}

// report returns err unless it repeats the last problem.
func (w *Watcher) report(err error) error {
	msg := err.Error()
	if msg == w.problem {
		return nil
	}
	w.problem = msg
	return err
}

// Run polls until ctx is done, calling OnChange and OnError; it returns
// nil when ctx is cancelled.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c, err := w.Check()
		if err != nil {
			w.cfg.OnError(err)
		}
		if c != nil {
			w.cfg.OnChange(c)
		}
	}
}

// Watch loads the catalogue at path with DefaultNames, passes it to
// onChange, then polls every DefaultWatchInterval until ctx is done,
// passing each valid new version to onChange and each problem to onError
// (nil: dropped). It returns an error only if the initial load fails.
func Watch(ctx context.Context, path string, onChange func(*Catalogue), onError func(error)) error {
	w, err := NewWatcher(WatcherConfig{Path: path, OnChange: onChange, OnError: onError})
	if err != nil {
		return err
	}
	onChange(w.Current())
	return w.Run(ctx)
}
