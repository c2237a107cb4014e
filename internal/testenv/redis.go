package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisTimeout bounds each Redis command the helpers send themselves.
const redisTimeout = 10 * time.Second

// Redis returns the standalone Redis server's address (EnvRedis) and holds
// the server shared for the rest of t, so that no fault test stops it
// meanwhile. When EnvRedis is unset it skips t, or fails it under
// EnvRequireReal=1.
func Redis(t testing.TB) string {
	t.Helper()
	addr := addrs(t, EnvRedis)[0]
	use(t, serviceRedis, false)
	reachable(t, "Redis", EnvRedis, addr)
	return addr
}

// ExclusiveRedis is Redis for fault tests: it waits until no other test uses
// the server, holds it exclusively for the rest of t, and when t ends starts
// the server again if t left it stopped. Only a test that called
// ExclusiveRedis may call StopRedis, KillRedis, StartRedis and RestartRedis;
// it may also call RedisDB.
func ExclusiveRedis(t testing.TB) string {
	t.Helper()
	addr := addrs(t, EnvRedis)[0]
	needScript(t)
	use(t, serviceRedis, true)
	t.Cleanup(func() { script(t, "start-redis") })
	reachable(t, "Redis", EnvRedis, addr)
	return addr
}

// StopRedis stops the standalone server gracefully (SIGTERM: the append-only
// file is flushed) and returns when its process has exited.
func StopRedis(t testing.TB) {
	t.Helper()
	requireExclusive(t, serviceRedis, "StopRedis", "ExclusiveRedis")
	script(t, "stop-redis")
}

// KillRedis stops the standalone server with SIGKILL, as a crash would;
// writes of the last second may be lost (appendfsync everysec).
func KillRedis(t testing.TB) {
	t.Helper()
	requireExclusive(t, serviceRedis, "KillRedis", "ExclusiveRedis")
	script(t, "stop-redis", "--kill")
}

// StartRedis starts the stopped server on its old port and append-only file
// and returns when it answers PING. It is a no-op, apart from the PING, when
// the server runs.
func StartRedis(t testing.TB) {
	t.Helper()
	requireExclusive(t, serviceRedis, "StartRedis", "ExclusiveRedis")
	script(t, "start-redis")
}

// RestartRedis is StopRedis followed by StartRedis.
func RestartRedis(t testing.TB) {
	t.Helper()
	requireExclusive(t, serviceRedis, "RestartRedis", "ExclusiveRedis")
	script(t, "restart-redis")
}

// RedisDB returns a client of the standalone server on a database number
// reserved for t alone (never database 0), empty when t starts. When t ends
// the database is flushed, the client closed and the number released. The
// reservation is a file lock, so it holds across the test binaries of
// `go test ./...`; when every database is taken, RedisDB waits.
func RedisDB(t testing.TB) *redis.Client {
	t.Helper()
	addr := Redis(t)
	n := databases(t, addr)
	db, release := claimDB(t, addr, n)
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		defer cancel()
		if err := c.FlushDB(ctx).Err(); err != nil {
			// The next holder flushes too; a stopped server is not an error here.
			t.Logf("testenv: flushing Redis database %d after the test: %v", db, err)
		}
		if err := c.Close(); err != nil {
			t.Logf("testenv: closing Redis client: %v", err)
		}
		if err := release(); err != nil {
			t.Errorf("testenv: releasing Redis database %d: %v", db, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("testenv: flushing Redis database %d before the test: %v", db, err)
	}
	return c
}

// databases returns the server's number of databases (CONFIG GET databases).
func databases(t testing.TB, addr string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	v, err := c.ConfigGet(ctx, "databases").Result()
	if err != nil {
		t.Fatalf("testenv: CONFIG GET databases on %s: %v", addr, err)
	}
	n, err := strconv.Atoi(v["databases"])
	if err != nil || n < 2 {
		t.Fatalf("testenv: Redis at %s has databases=%q; need at least 2", addr, v["databases"])
	}
	return n
}

// claimDB reserves a database number in [1, n) of the server at addr and
// returns it with the function that releases it.
func claimDB(t testing.TB, addr string, n int) (int, func() error) {
	t.Helper()
	dir := filepath.Join(lockDir(), "redis-db")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testenv: lock folder: %v", err)
	}
	server := strings.NewReplacer(":", "_", "/", "_").Replace(addr)
	deadline := time.Now().Add(lockWait)
	for {
		for db := 1; db < n; db++ {
			path := filepath.Join(dir, server+"-"+strconv.Itoa(db)+".lock")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatalf("testenv: %v", err)
			}
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				return db, f.Close
			}
			f.Close()
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				t.Fatalf("testenv: flock %s: %v", path, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: all %d Redis databases of %s stayed taken for %s", ErrLockTimeout, n-1, addr, lockWait)
		}
		time.Sleep(lockPoll)
	}
}

// RedisCluster returns the Redis Cluster's node addresses
// (EnvRedisCluster). When EnvRedisCluster is unset it skips t, or fails it
// under EnvRequireReal=1.
func RedisCluster(t testing.TB) []string {
	t.Helper()
	nodes := addrs(t, EnvRedisCluster)
	reachable(t, "Redis Cluster", EnvRedisCluster, nodes[0])
	return nodes
}

// RedisClusterClient returns a client of the Redis Cluster and a key prefix
// unique to this call ("test:<test name>:<random>:"). The cluster has only
// database 0, so t must name every key with the prefix; when t ends the
// prefix's keys are deleted on every master and the client is closed.
func RedisClusterClient(t testing.TB) (*redis.ClusterClient, string) {
	t.Helper()
	nodes := RedisCluster(t)
	prefix := uniqueName(t, "test", ':', 120) + ":"
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		defer cancel()
		if err := deletePrefix(ctx, c, prefix); err != nil {
			t.Logf("testenv: deleting Redis Cluster keys %s*: %v", prefix, err)
		}
		if err := c.Close(); err != nil {
			t.Logf("testenv: closing Redis Cluster client: %v", err)
		}
	})
	return c, prefix
}

// deletePrefix deletes every key that starts with prefix on every master.
func deletePrefix(ctx context.Context, c *redis.ClusterClient, prefix string) error {
	return c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, prefix+"*", 1000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				// One key per command: keys of one node still live in different slots.
				p := node.Pipeline()
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				if _, err := p.Exec(ctx); err != nil {
					return fmt.Errorf("unlink: %w", err)
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	})
}
