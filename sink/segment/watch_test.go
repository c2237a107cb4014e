package segment_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamprofile/streamprofile/sink/segment"
)

const (
	catA = "version: 1\nsegments:\n  - {name: a, rule: views_total > 1}\n"
	catB = "version: 1\nsegments:\n  - {name: b, rule: views_total > 2}\n"
	badC = "version: 1\nsegments:\n  - {name: c, rule: views_totl > 2}\n"
	badD = "version: 1\nsegments:\n  - {name: d}\n"
)

// write replaces the file and gives it a new modification time.
func write(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func names(c *segment.Catalogue) string {
	var s string
	for _, seg := range c.Segments() {
		s += seg.Name
	}
	return s
}

func TestWatcherCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "segments.yaml")
	mt := time.Now().Add(-time.Hour)
	tick := func() time.Time { mt = mt.Add(time.Second); return mt }
	write(t, path, catA, tick())
	w, err := segment.NewWatcher(segment.WatcherConfig{Path: path, OnChange: func(*segment.Catalogue) {}})
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		name    string
		do      func()
		changed string // names of the new catalogue; "" none
		err     error  // nil: no error reported
		current string
	}
	steps := []step{
		{"unchanged", func() {}, "", nil, "a"},
		{"touched, same content", func() { write(t, path, catA, tick()) }, "", nil, "a"},
		{"valid edit", func() { write(t, path, catB, tick()) }, "b", nil, "b"},
		{"invalid edit is reported, old catalogue stays", func() { write(t, path, badC, tick()) }, "", segment.ErrUnknownName, "b"},
		{"the same problem is not reported again", func() {}, "", nil, "b"},
		{"nor after a touch", func() { write(t, path, badC, tick()) }, "", nil, "b"},
		{"a new problem is", func() { write(t, path, badD, tick()) }, "", segment.ErrInvalid, "b"},
		{"file removed", func() { os.Remove(path) }, "", os.ErrNotExist, "b"},
		{"still removed", func() {}, "", nil, "b"},
		{"restored to the current content", func() { write(t, path, catB, tick()) }, "", nil, "b"},
		{"the old problem after a good state is reported again", func() { write(t, path, badD, tick()) }, "", segment.ErrInvalid, "b"},
		{"valid edit", func() { write(t, path, catA, tick()) }, "a", nil, "a"},
		{"an edit that keeps size and mtime is not seen", func() { write(t, path, catA[:len(catA)-5]+"> 9}\n", mt) }, "", nil, "a"},
	}
	for _, s := range steps {
		s.do()
		c, err := w.Check()
		if s.err == nil && err != nil || s.err != nil && !errors.Is(err, s.err) {
			t.Fatalf("%s: error %v, want %v", s.name, err, s.err)
		}
		if (c == nil) != (s.changed == "") || c != nil && names(c) != s.changed {
			t.Fatalf("%s: new catalogue %v, want %q", s.name, c, s.changed)
		}
		if names(w.Current()) != s.current {
			t.Fatalf("%s: current %q, want %q", s.name, names(w.Current()), s.current)
		}
	}
	// The error names the file and position of the bad rule.
	write(t, path, badC, tick())
	_, err = w.Check()
	if e := asError(t, err); e.File != path || e.Line != 3 || e.Column != 21 {
		t.Fatalf("reload error %v", err)
	}
}

func TestNewWatcherErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	write(t, bad, badC, time.Now())
	noop := func(*segment.Catalogue) {}
	tests := []struct {
		cfg segment.WatcherConfig
		err error
	}{
		{segment.WatcherConfig{Path: bad, OnChange: noop}, segment.ErrUnknownName},
		{segment.WatcherConfig{Path: filepath.Join(dir, "missing.yaml"), OnChange: noop}, os.ErrNotExist},
		{segment.WatcherConfig{OnChange: noop}, segment.ErrConfig},
		{segment.WatcherConfig{Path: bad}, segment.ErrConfig},
		{segment.WatcherConfig{Path: bad, OnChange: noop, Interval: time.Millisecond}, segment.ErrConfig},
		{segment.WatcherConfig{Path: bad, OnChange: noop, Catalogue: segment.Config{Names: segment.Names{Values: []string{"A"}}}}, segment.ErrNames},
	}
	for _, tt := range tests {
		if _, err := segment.NewWatcher(tt.cfg); !errors.Is(err, tt.err) {
			t.Errorf("NewWatcher(%+v) = %v, want %v", tt.cfg, err, tt.err)
		}
	}
}

func TestWatcherRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	path := filepath.Join(t.TempDir(), "segments.yaml")
	write(t, path, catA, time.Now().Add(-time.Minute))
	changes := make(chan *segment.Catalogue, 4)
	problems := make(chan error, 4)
	w, err := segment.NewWatcher(segment.WatcherConfig{
		Path: path, Interval: 10 * time.Millisecond,
		OnChange: func(c *segment.Catalogue) { changes <- c },
		OnError:  func(err error) { problems <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	write(t, path, badC, time.Now().Add(-30*time.Second))
	select {
	case err := <-problems:
		if !errors.Is(err, segment.ErrUnknownName) {
			t.Fatalf("OnError(%v)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("invalid edit not reported")
	}
	write(t, path, catB, time.Now())
	select {
	case c := <-changes:
		if names(c) != "b" || w.Current() != c {
			t.Fatalf("OnChange(%q), current %q", names(c), names(w.Current()))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("valid edit not delivered")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(changes) != 0 || len(problems) != 0 {
		t.Fatalf("extra callbacks: %d changes, %d problems", len(changes), len(problems))
	}
}

func TestWatch(t *testing.T) {
	defer goleak.VerifyNone(t)
	path := filepath.Join(t.TempDir(), "segments.yaml")
	write(t, path, catA, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *segment.Catalogue, 1)
	done := make(chan error, 1)
	go func() { done <- segment.Watch(ctx, path, func(c *segment.Catalogue) { got <- c }, nil) }()
	if c := <-got; names(c) != "a" {
		t.Fatalf("initial catalogue %q", names(c))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v", err)
	}
	write(t, path, badC, time.Now())
	if err := segment.Watch(context.Background(), path, func(*segment.Catalogue) {}, nil); !errors.Is(err, segment.ErrUnknownName) {
		t.Fatalf("Watch on an invalid file = %v", err)
	}
}
