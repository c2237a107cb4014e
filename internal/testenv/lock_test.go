package testenv

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func testLock(t *testing.T, wait time.Duration) serviceLock {
	t.Helper()
	return serviceLock{dir: t.TempDir(), service: "svc", wait: wait, poll: time.Millisecond}
}

func mustRelease(t *testing.T, release func() error) {
	t.Helper()
	if err := release(); err != nil {
		t.Fatalf("release: %v", err)
	}
}

func TestHolderCovers(t *testing.T) {
	pid := os.Getpid()
	tests := []struct {
		holder holder
		pid    int
		name   string
		want   bool
	}{
		{holder{pid, "TestA"}, pid, "TestA", true},
		{holder{pid, "TestA"}, pid, "TestA/sub", true},
		{holder{pid, "TestA"}, pid, "TestA/sub/deeper", true},
		{holder{pid, "TestA"}, pid, "TestAB", false},
		{holder{pid, "TestA/sub"}, pid, "TestA", false},
		{holder{pid, "TestA"}, pid + 1, "TestA", false},
	}
	for _, tt := range tests {
		if got := tt.holder.covers(tt.pid, tt.name); got != tt.want {
			t.Errorf("holder %+v covers(%d, %q) = %v, want %v", tt.holder, tt.pid, tt.name, got, tt.want)
		}
	}
}

func TestSharedHoldersCoexist(t *testing.T) {
	l := testLock(t, 50*time.Millisecond)
	pid := os.Getpid()
	r1, err := l.shared(holder{pid, "TestA"})
	if err != nil {
		t.Fatalf("first shared: %v", err)
	}
	r2, err := l.shared(holder{pid, "TestB"})
	if err != nil {
		t.Fatalf("second shared while the first is held: %v", err)
	}
	mustRelease(t, r1)
	mustRelease(t, r2)
}

func TestExclusiveWaitsForSharedHolders(t *testing.T) {
	l := testLock(t, 5*time.Second)
	pid := os.Getpid()
	release, err := l.shared(holder{pid, "TestReader"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	released := make(chan struct{})
	go func() {
		r, err := l.exclusive(holder{pid, "TestFault"})
		select {
		case <-released:
		default:
			err = errors.New("exclusive access granted while a shared holder was active")
		}
		if err == nil {
			err = r()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(released)
	mustRelease(t, release)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestSharedWaitsForExclusiveHolder(t *testing.T) {
	l := testLock(t, 5*time.Second)
	pid := os.Getpid()
	release, err := l.exclusive(holder{pid, "TestFault"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	released := make(chan struct{})
	go func() {
		r, err := l.shared(holder{pid, "TestOther"})
		select {
		case <-released:
		default:
			err = errors.New("shared access granted while the exclusive holder was active")
		}
		if err == nil {
			err = r()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(released)
	mustRelease(t, release)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestExclusiveHolderSubtestsGoAhead(t *testing.T) {
	l := testLock(t, 50*time.Millisecond)
	pid := os.Getpid()
	release, err := l.exclusive(holder{pid, "TestFault"})
	if err != nil {
		t.Fatal(err)
	}
	defer mustRelease(t, release)
	for _, name := range []string{"TestFault", "TestFault/sub"} {
		r, err := l.shared(holder{pid, name})
		if err != nil {
			t.Errorf("shared for %s under its own exclusive lock: %v", name, err)
			continue
		}
		mustRelease(t, r)
		r, err = l.exclusive(holder{pid, name})
		if err != nil {
			t.Errorf("exclusive for %s under its own exclusive lock: %v", name, err)
			continue
		}
		mustRelease(t, r)
	}
	if !l.ownedBy(holder{pid, "TestFault/sub"}) {
		t.Error("ownedBy(subtest) = false under the parent's exclusive lock")
	}
	if l.ownedBy(holder{pid, "TestOther"}) {
		t.Error("ownedBy(other test) = true")
	}
}

func TestExclusiveAfterOwnSharedFailsAtOnce(t *testing.T) {
	l := testLock(t, time.Minute)
	pid := os.Getpid()
	release, err := l.shared(holder{pid, "TestMixed"})
	if err != nil {
		t.Fatal(err)
	}
	defer mustRelease(t, release)
	start := time.Now()
	_, err = l.exclusive(holder{pid, "TestMixed/sub"})
	if !errors.Is(err, ErrSelfDeadlock) {
		t.Fatalf("exclusive after own shared: err = %v, want ErrSelfDeadlock", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("self-deadlock detected after %s, want at once", waited)
	}
}

func TestLockTimeout(t *testing.T) {
	tests := []struct {
		name      string
		holdFirst func(serviceLock) (func() error, error)
		tryThen   func(serviceLock) (func() error, error)
	}{
		{
			name:      "exclusive behind another test's shared",
			holdFirst: func(l serviceLock) (func() error, error) { return l.shared(holder{os.Getpid(), "TestReader"}) },
			tryThen:   func(l serviceLock) (func() error, error) { return l.exclusive(holder{os.Getpid(), "TestFault"}) },
		},
		{
			name:      "shared behind another test's exclusive",
			holdFirst: func(l serviceLock) (func() error, error) { return l.exclusive(holder{os.Getpid(), "TestFault"}) },
			tryThen:   func(l serviceLock) (func() error, error) { return l.shared(holder{os.Getpid(), "TestReader"}) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := testLock(t, 30*time.Millisecond)
			release, err := tt.holdFirst(l)
			if err != nil {
				t.Fatal(err)
			}
			defer mustRelease(t, release)
			_, err = tt.tryThen(l)
			if !errors.Is(err, ErrLockTimeout) {
				t.Fatalf("err = %v, want ErrLockTimeout", err)
			}
		})
	}
}

func TestReleaseRemovesHolderRecords(t *testing.T) {
	l := testLock(t, 50*time.Millisecond)
	pid := os.Getpid()
	r, err := l.shared(holder{pid, "TestA"})
	if err != nil {
		t.Fatal(err)
	}
	if !l.readsAlready(holder{pid, "TestA/sub"}) {
		t.Error("readsAlready = false while TestA holds the lock shared")
	}
	mustRelease(t, r)
	if l.readsAlready(holder{pid, "TestA"}) {
		t.Error("readsAlready = true after release")
	}
	r, err = l.exclusive(holder{pid, "TestB"})
	if err != nil {
		t.Fatal(err)
	}
	mustRelease(t, r)
	if _, ok := l.owner(); ok {
		t.Error("owner recorded after the exclusive holder released")
	}
}

func TestUniqueName(t *testing.T) {
	a := uniqueName(t, "test", '.', 180)
	b := uniqueName(t, "test", '.', 180)
	if a == b {
		t.Fatalf("two calls returned the same name %q", a)
	}
	t.Run("odd/chars here:{x}", func(t *testing.T) {
		n := uniqueName(t, "test", '.', 180)
		for _, c := range n {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
			if !ok {
				t.Fatalf("name %q has %q, not valid in a Kafka topic name", n, c)
			}
		}
	})
	long := uniqueName(t, "test", ':', 5)
	if want := len("test:") + 5 + len(":") + 8; len(long) != want {
		t.Errorf("len(%q) = %d, want %d", long, len(long), want)
	}
}

// FuzzOwnerRecord feeds arbitrary bytes as the exclusive holder's record:
// owner never panics, and whatever it accepts names a holder that covers
// itself and its subtests.
func FuzzOwnerRecord(f *testing.F) {
	f.Add([]byte("123\nTestFault\n"))
	f.Add([]byte("123\nTestFault/sub case\n"))
	f.Add([]byte("\n\n"))
	f.Add([]byte("x\nTest\n"))
	f.Add([]byte("-1\n\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, record []byte) {
		l := serviceLock{dir: dir, service: "fuzz"}
		if err := os.WriteFile(l.ownerPath(), record, 0o644); err != nil {
			t.Fatal(err)
		}
		h, ok := l.owner()
		if !ok {
			return
		}
		if !h.covers(h.pid, h.name) || !h.covers(h.pid, h.name+"/sub") {
			t.Fatalf("owner %+v from %q does not cover itself and its subtests", h, record)
		}
		if h.covers(h.pid+1, h.name) {
			t.Fatalf("owner %+v covers another process", h)
		}
	})
}

// namedTB is a testing.TB with a chosen name, for uniqueName.
type namedTB struct {
	testing.TB
	name string
}

func (n namedTB) Name() string { return n.name }
func (n namedTB) Helper()      {}

// FuzzUniqueName checks that any test name yields a valid Kafka topic name
// (characters [A-Za-z0-9._-], at most 249 bytes) of the documented shape.
func FuzzUniqueName(f *testing.F) {
	f.Add("TestKafka")
	f.Add("TestX/sub test/#01")
	f.Add("Test\x00\xff\u00e9:{}")
	f.Add(strings.Repeat("TestLong", 100))
	f.Fuzz(func(t *testing.T, name string) {
		got := uniqueName(namedTB{TB: t, name: name}, "test", '.', 180)
		if len(got) > 249 {
			t.Fatalf("len(%q) = %d, over Kafka's 249", got, len(got))
		}
		if !strings.HasPrefix(got, "test.") {
			t.Fatalf("%q does not start with test.", got)
		}
		for _, c := range []byte(got) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
			if !ok {
				t.Fatalf("%q has byte %q, not valid in a Kafka topic name", got, c)
			}
		}
		if want := len("test.") + min(len(name), 180) + len(".") + 8; len(got) != want {
			t.Fatalf("len(%q) = %d, want %d", got, len(got), want)
		}
	})
}
