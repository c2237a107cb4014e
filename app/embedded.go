package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedKafka is an in-process Kafka (franz-go's kfake) for the demo and
// tests. It speaks the Kafka protocol on a loopback port, so the same
// kafka-go clients run against it as against a real broker.
type EmbeddedKafka struct {
	c *kfake.Cluster
}

// StartEmbeddedKafka starts a one-broker in-process cluster.
func StartEmbeddedKafka() (*EmbeddedKafka, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		return nil, fmt.Errorf("app: embedded kafka: %w", err)
	}
	return &EmbeddedKafka{c: c}, nil
}

// Brokers returns the bootstrap addresses.
func (k *EmbeddedKafka) Brokers() []string { return k.c.ListenAddrs() }

// Close stops the cluster. It is idempotent.
func (k *EmbeddedKafka) Close() { k.c.Close() }

// RedisServer is a Redis for the demo: a real redis-server child process
// when one is on PATH, else an in-process miniredis.
type RedisServer struct {
	Addr string
	Kind string // "redis-server" or "miniredis"
	cmd  *exec.Cmd
	dir  string
	mini *miniredis.Miniredis
}

// StartRedis starts a Redis for the demo. preferReal=false forces
// miniredis.
func StartRedis(ctx context.Context, preferReal bool, log *slog.Logger) (*RedisServer, error) {
	if preferReal {
		if path, err := exec.LookPath("redis-server"); err == nil {
			s, err := startRedisServer(ctx, path)
			if err == nil {
				return s, nil
			}
			log.Warn("redis-server on PATH did not start; using in-process miniredis", "err", err)
		}
	}
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("app: miniredis: %w", err)
	}
	return &RedisServer{Addr: m.Addr(), Kind: "miniredis", mini: m}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startRedisServer(ctx context.Context, path string) (*RedisServer, error) {
	dir, err := os.MkdirTemp("", "streamprofile-redis-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--protected-mode", "yes", "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(port), Kind: "redis-server", cmd: cmd, dir: dir}
		c := redis.NewClient(&redis.Options{Addr: s.Addr})
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if lastErr = c.Ping(ctx).Err(); lastErr == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
		if lastErr == nil {
			return s, nil
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("redis-server did not answer PING: %w", lastErr)
}

// Close stops the server. It is idempotent.
func (s *RedisServer) Close() error {
	var err error
	if s.mini != nil {
		s.mini.Close()
		s.mini = nil
	}
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		s.cmd = nil
	}
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
		s.dir = ""
	}
	return err
}
