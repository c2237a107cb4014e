package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment variables read by the helpers. scripts/testenv.sh env prints
// all of them; scripts/test.sh exports them and EnvRequireReal=1.
const (
	// EnvKafka lists the Kafka bootstrap brokers, comma-separated host:port.
	EnvKafka = "STREAMPROFILE_TEST_KAFKA"
	// EnvRedis is the standalone Redis server's host:port.
	EnvRedis = "STREAMPROFILE_TEST_REDIS"
	// EnvRedisCluster lists the Redis Cluster nodes, comma-separated host:port.
	EnvRedisCluster = "STREAMPROFILE_TEST_REDIS_CLUSTER"
	// EnvDir is scripts/testenv.sh's state folder; the helpers keep their
	// lock files under it.
	EnvDir = "STREAMPROFILE_TESTENV_DIR"
	// EnvScript is the absolute path of scripts/testenv.sh, which the fault
	// helpers run.
	EnvScript = "STREAMPROFILE_TESTENV_SCRIPT"
	// EnvRequireReal, when "1", turns every skip for a missing service into
	// a test failure.
	EnvRequireReal = "STREAMPROFILE_REQUIRE_REAL"
)

const (
	// lockWait bounds how long a helper waits for other tests' use of a
	// service (a fault test waits for all users to finish their test).
	lockWait = 10 * time.Minute
	// lockPoll is the interval between attempts to take a lock.
	lockPoll = 20 * time.Millisecond
	// dialTimeout bounds the reachability check of a service.
	dialTimeout = 5 * time.Second
	// scriptTimeout bounds one run of scripts/testenv.sh.
	scriptTimeout = 5 * time.Minute
)

// Service names, as used for locks and in messages.
const (
	serviceKafka = "kafka"
	serviceRedis = "redis"
)

// unavailable skips t because a service is not configured, or fails it when
// EnvRequireReal=1.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequireReal) == "1" {
		t.Fatalf("testenv: %s, and %s=1 forbids skipping: run the tests with scripts/test.sh, which starts real Kafka and Redis",
			msg, EnvRequireReal)
	}
	t.Skipf("testenv: %s: integration test skipped; run scripts/test.sh to start real Kafka and Redis and run it", msg)
}

// addrs reads a comma-separated address list from the environment variable
// name; it skips (or fails) t when the variable is unset or empty.
func addrs(t testing.TB, name string) []string {
	t.Helper()
	var out []string
	for a := range strings.SplitSeq(os.Getenv(name), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		unavailable(t, "%s is not set", name)
	}
	return out
}

// reachable fails t when nothing accepts TCP connections at addr.
func reachable(t testing.TB, what, env, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		t.Fatalf("testenv: %s at %s (from %s) does not answer: %v; is `scripts/testenv.sh up` running?", what, addr, env, err)
	}
	if err := c.Close(); err != nil {
		t.Logf("testenv: closing probe connection to %s: %v", addr, err)
	}
}

// me names the caller for the service locks.
func me(t testing.TB) holder {
	return holder{pid: os.Getpid(), name: t.Name()}
}

// lockDir is where the service and database locks live: under the
// environment's state folder, or the system temp folder for services that
// scripts/testenv.sh did not start.
func lockDir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return filepath.Join(d, "run", "locks")
	}
	return filepath.Join(os.TempDir(), "streamprofile-testenv-locks")
}

func lockFor(service string) serviceLock {
	return serviceLock{dir: lockDir(), service: service, wait: lockWait, poll: lockPoll}
}

// use takes service's lock for the rest of t, shared or exclusive.
func use(t testing.TB, service string, exclusive bool) {
	t.Helper()
	l := lockFor(service)
	take := l.shared
	if exclusive {
		take = l.exclusive
	}
	release, err := take(me(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Errorf("testenv: releasing %s lock: %v", service, err)
		}
	})
}

// requireExclusive fails t unless t (or a parent test) holds service
// exclusively; fn and helper name the fault helper and the Exclusive helper
// for the message.
func requireExclusive(t testing.TB, service, fn, helper string) {
	t.Helper()
	if !lockFor(service).ownedBy(me(t)) {
		t.Fatalf("%v: %s needs %s(t) earlier in this test (or a parent test), so that no other test uses %s meanwhile",
			ErrNotExclusive, fn, helper, service)
	}
}

// needScript skips (or fails) t unless scripts/testenv.sh's path is known.
func needScript(t testing.TB) string {
	t.Helper()
	path := os.Getenv(EnvScript)
	if path == "" {
		unavailable(t, "%s is not set (stopping and starting services needs the environment of scripts/testenv.sh)", EnvScript)
	}
	return path
}

// script runs scripts/testenv.sh with args and fails t when it fails.
func script(t testing.TB, args ...string) {
	t.Helper()
	path := needScript(t)
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "bash", append([]string{path}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: scripts/testenv.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("testenv: scripts/testenv.sh %s (%s)", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// uniqueName returns prefix + sep + t.Name() reduced to [A-Za-z0-9_-] (at
// most max bytes of it) + sep + 8 random hex digits.
func uniqueName(t testing.TB, prefix string, sep byte, maxName int) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	name := []byte(t.Name())
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			name[i] = '_'
		}
	}
	if len(name) > maxName {
		name = name[:maxName]
	}
	return prefix + string(sep) + string(name) + string(sep) + hex.EncodeToString(b[:])
}
