package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// holder identifies who takes a service lock: a test (by its full name,
// subtests included) in a process.
type holder struct {
	pid  int
	name string
}

// covers reports whether h is the test named by name or one of its
// ancestors, in the same process.
func (h holder) covers(pid int, name string) bool {
	return h.pid == pid && (h.name == name || strings.HasPrefix(name, h.name+"/"))
}

// serviceLock coordinates the processes and tests that use one service
// (Kafka, Redis): users hold it shared, fault tests that stop the service
// hold it exclusively. It is an flock(2) on <dir>/<service>.lock, so it works
// across the test binaries that `go test ./...` runs in parallel and is
// released by the kernel if a test binary dies.
//
// Next to the lock file:
//   - <service>.owner names the exclusive holder ("pid\nname\n"), so that the
//     exclusive test's own subtests and helpers (RedisDB inside a test that
//     called ExclusiveRedis) go ahead instead of waiting for themselves;
//   - <service>.readers/<pid>-* name each shared holder, so that a test that
//     asks for exclusive access while it already holds shared access fails
//     at once instead of waiting for itself.
type serviceLock struct {
	dir     string
	service string
	// wait bounds how long an acquisition waits for other holders.
	wait time.Duration
	// poll is the interval between non-blocking attempts.
	poll time.Duration
}

func (l serviceLock) lockPath() string    { return filepath.Join(l.dir, l.service+".lock") }
func (l serviceLock) ownerPath() string   { return filepath.Join(l.dir, l.service+".owner") }
func (l serviceLock) readersPath() string { return filepath.Join(l.dir, l.service+".readers") }

// open opens (creating if needed) the lock file.
func (l serviceLock) open() (*os.File, error) {
	if err := os.MkdirAll(l.readersPath(), 0o755); err != nil {
		return nil, fmt.Errorf("testenv: lock folder: %w", err)
	}
	f, err := os.OpenFile(l.lockPath(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testenv: open lock: %w", err)
	}
	return f, nil
}

// owner reads the recorded exclusive holder; ok is false when there is none
// or it cannot be read.
func (l serviceLock) owner() (h holder, ok bool) {
	b, err := os.ReadFile(l.ownerPath())
	if err != nil {
		return holder{}, false
	}
	pid, name, found := strings.Cut(strings.TrimRight(string(b), "\n"), "\n")
	if !found {
		return holder{}, false
	}
	p, err := strconv.Atoi(pid)
	if err != nil {
		return holder{}, false
	}
	return holder{pid: p, name: name}, true
}

// ownedBy reports whether the exclusive holder on record is h's test or an
// ancestor of it.
func (l serviceLock) ownedBy(h holder) bool {
	o, ok := l.owner()
	return ok && o.covers(h.pid, h.name)
}

// readsAlready reports whether h's test, or an ancestor of it, holds the lock
// shared.
func (l serviceLock) readsAlready(h holder) bool {
	files, err := filepath.Glob(filepath.Join(l.readersPath(), strconv.Itoa(h.pid)+"-*"))
	if err != nil {
		return false
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if (holder{pid: h.pid, name: string(b)}).covers(h.pid, h.name) {
			return true
		}
	}
	return false
}

// shared takes the lock shared for h and returns its release function. When
// h's test (or an ancestor) holds the lock exclusively it returns at once
// with a no-op release.
func (l serviceLock) shared(h holder) (release func() error, err error) {
	f, err := l.open()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(l.wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("testenv: flock %s: %w", l.lockPath(), err)
		}
		if l.ownedBy(h) {
			f.Close()
			return func() error { return nil }, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, l.timeoutError("shared", h)
		}
		time.Sleep(l.poll)
	}
	reader, err := os.CreateTemp(l.readersPath(), strconv.Itoa(h.pid)+"-*")
	if err == nil {
		_, err = reader.WriteString(h.name)
		if cerr := reader.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("testenv: record shared holder: %w", err)
	}
	return func() error {
		rerr := os.Remove(reader.Name())
		// Closing the descriptor releases the flock.
		return errors.Join(rerr, f.Close())
	}, nil
}

// exclusive takes the lock exclusively for h and returns its release
// function. When h's test (or an ancestor) holds it exclusively already it
// returns at once with a no-op release; when h's test holds it shared it
// fails at once, since waiting would wait for itself.
func (l serviceLock) exclusive(h holder) (release func() error, err error) {
	f, err := l.open()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(l.wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("testenv: flock %s: %w", l.lockPath(), err)
		}
		if l.ownedBy(h) {
			f.Close()
			return func() error { return nil }, nil
		}
		if l.readsAlready(h) {
			f.Close()
			return nil, fmt.Errorf("%w: %s already uses %s shared (it or a parent test called the plain helper); "+
				"call the Exclusive helper first and only", ErrSelfDeadlock, h.name, l.service)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, l.timeoutError("exclusive", h)
		}
		time.Sleep(l.poll)
	}
	tmp := l.ownerPath() + ".tmp." + strconv.Itoa(h.pid)
	err = os.WriteFile(tmp, []byte(strconv.Itoa(h.pid)+"\n"+h.name+"\n"), 0o644)
	if err == nil {
		err = os.Rename(tmp, l.ownerPath())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("testenv: record exclusive holder: %w", err)
	}
	return func() error {
		rerr := os.Remove(l.ownerPath())
		return errors.Join(rerr, f.Close())
	}, nil
}

func (l serviceLock) timeoutError(mode string, h holder) error {
	who := "tests in other packages"
	if o, ok := l.owner(); ok {
		who = fmt.Sprintf("exclusive holder %s (pid %d)", o.name, o.pid)
	}
	readers := l.readerNames()
	if len(readers) > 0 {
		who += "; shared holders: " + strings.Join(readers, ", ")
	}
	return fmt.Errorf("%w: %s waited %s for %s access to %s; held by %s", ErrLockTimeout, h.name, l.wait, mode, l.service, who)
}

// readerNames lists the recorded shared holders as "name (pid N)".
func (l serviceLock) readerNames() []string {
	files, err := filepath.Glob(filepath.Join(l.readersPath(), "*"))
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, _, _ := strings.Cut(filepath.Base(f), "-")
		out = append(out, fmt.Sprintf("%s (pid %s)", b, pid))
	}
	return out
}
