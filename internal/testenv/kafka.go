package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// topicTimeout bounds creating a topic and waiting for its partition leaders.
const topicTimeout = 60 * time.Second

// Kafka returns the bootstrap brokers of the test Kafka cluster (EnvKafka)
// and holds the broker shared for the rest of t, so that no fault test stops
// it meanwhile. When EnvKafka is unset it skips t, or fails it under
// EnvRequireReal=1.
func Kafka(t testing.TB) []string {
	t.Helper()
	brokers := addrs(t, EnvKafka)
	use(t, serviceKafka, false)
	reachable(t, "Kafka", EnvKafka, brokers[0])
	return brokers
}

// ExclusiveKafka is Kafka for fault tests: it waits until no other test uses
// the broker, holds it exclusively for the rest of t, and when t ends starts
// the broker again if t left it stopped. Only a test that called
// ExclusiveKafka may call StopKafka, KillKafka, StartKafka and RestartKafka.
func ExclusiveKafka(t testing.TB) []string {
	t.Helper()
	brokers := addrs(t, EnvKafka)
	needScript(t)
	use(t, serviceKafka, true)
	t.Cleanup(func() { script(t, "start-kafka") })
	reachable(t, "Kafka", EnvKafka, brokers[0])
	return brokers
}

// StopKafka stops the broker gracefully (SIGTERM, controlled shutdown) and
// returns when its process has exited; its data and port are kept.
func StopKafka(t testing.TB) {
	t.Helper()
	requireExclusive(t, serviceKafka, "StopKafka", "ExclusiveKafka")
	script(t, "stop-kafka")
}

// KillKafka stops the broker with SIGKILL, as a crash would.
func KillKafka(t testing.TB) {
	t.Helper()
	requireExclusive(t, serviceKafka, "KillKafka", "ExclusiveKafka")
	script(t, "stop-kafka", "--kill")
}

// StartKafka starts the stopped broker on its old port and data and returns
// when it serves metadata and accepts writes. It is a no-op, apart from the
// readiness check, when the broker runs.
func StartKafka(t testing.TB) {
	t.Helper()
	requireExclusive(t, serviceKafka, "StartKafka", "ExclusiveKafka")
	script(t, "start-kafka")
}

// RestartKafka is StopKafka followed by StartKafka.
func RestartKafka(t testing.TB) {
	t.Helper()
	requireExclusive(t, serviceKafka, "RestartKafka", "ExclusiveKafka")
	script(t, "restart-kafka")
}

// Topic creates a topic with a unique name ("test.<test name>.<random>"),
// the given number of partitions and replication factor 1, waits until every
// partition has a leader, and deletes the topic when t ends. brokers is what
// Kafka or ExclusiveKafka returned.
//
// The topic is created through kafka.DefaultTransport, so kafka.Writers and
// kafka.Clients that use the default transport with the same brokers know it
// at once; a Writer with a Transport of its own learns it on its first
// metadata request.
func Topic(t testing.TB, brokers []string, partitions int) string {
	t.Helper()
	if partitions < 1 {
		t.Fatalf("testenv: Topic: partitions = %d, want at least 1", partitions)
	}
	if len(brokers) == 0 {
		t.Fatal("testenv: Topic: no brokers")
	}
	name := uniqueName(t, "test", '.', 180)
	ctx, cancel := context.WithTimeout(context.Background(), topicTimeout)
	defer cancel()

	var err error
	for {
		if err = createTopic(ctx, brokers, name, partitions); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: creating topic %s with %d partitions: %v", name, partitions, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := deleteTopic(ctx, brokers[0], name); err != nil {
			t.Logf("testenv: could not delete topic %s (harmless: names are unique): %v", name, err)
		}
	})
	for {
		if err = topicReady(ctx, brokers[0], name, partitions); err == nil {
			return name
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: topic %s: partitions not ready: %v", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// controller dials the broker at addr and then the cluster's controller.
func controller(ctx context.Context, addr string) (*kafka.Conn, error) {
	d := &kafka.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	c, err := conn.Controller()
	if err != nil {
		return nil, fmt.Errorf("find controller: %w", err)
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
	if err != nil {
		return nil, fmt.Errorf("dial controller: %w", err)
	}
	if err := cc.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, errors.Join(err, cc.Close())
	}
	return cc, nil
}

// createTopic creates the topic through kafka.DefaultTransport (a
// kafka.Client without Transport), which then refreshes its cached metadata
// until the topic shows; kafka.Writers that use the default transport with
// the same brokers would otherwise fail with UnknownTopicOrPartition for up
// to the transport's metadata TTL.
func createTopic(ctx context.Context, brokers []string, name string, partitions int) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		return err
	}
	if err := res.Errors[name]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return err
	}
	return nil
}

func deleteTopic(ctx context.Context, addr, name string) error {
	cc, err := controller(ctx, addr)
	if err != nil {
		return err
	}
	defer cc.Close()
	return cc.DeleteTopics(name)
}

// topicReady reports whether metadata shows name with the given number of
// partitions, each with a leader.
func topicReady(ctx context.Context, addr, name string, partitions int) error {
	d := &kafka.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	parts, err := conn.ReadPartitions(name)
	if err != nil {
		return err
	}
	if len(parts) != partitions {
		return fmt.Errorf("metadata shows %d partitions, want %d", len(parts), partitions)
	}
	for _, p := range parts {
		if p.Leader.Host == "" {
			return fmt.Errorf("partition %d has no leader", p.ID)
		}
	}
	return nil
}
