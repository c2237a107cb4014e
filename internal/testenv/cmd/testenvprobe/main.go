package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// probeTopic is the topic the readiness probe creates and writes to.
const probeTopic = "__testenv_probe"

// errProcessExited reports that the process being waited for has exited.
var errProcessExited = errors.New("process exited")

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: testenvprobe free PORT... | kafka [-timeout D] [-pid PID] ADDR")
		return 2
	}
	switch args[0] {
	case "free":
		return free(args[1:])
	case "kafka":
		return kafkaCmd(args[1:])
	default:
		fmt.Fprintf(os.Stderr, "testenvprobe: unknown command %q\n", args[0])
		return 2
	}
}

// free reports whether every port in args can be bound on 127.0.0.1.
func free(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "testenvprobe free: no ports given")
		return 2
	}
	for _, a := range args {
		p, err := strconv.Atoi(a)
		if err != nil || p <= 0 || p > 65535 {
			fmt.Fprintf(os.Stderr, "testenvprobe free: bad port %q\n", a)
			return 2
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", a))
		if err != nil {
			return 1
		}
		if err := l.Close(); err != nil {
			return 1
		}
	}
	return 0
}

func kafkaCmd(args []string) int {
	fs := flag.NewFlagSet("kafka", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 120*time.Second, "how long to wait for the broker")
	pid := fs.Int("pid", 0, "broker process id; give up at once when it exits (0: do not watch)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "testenvprobe kafka: want exactly one ADDR")
		return 2
	}
	addr := fs.Arg(0)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var last error
	for {
		if *pid > 0 && !alive(*pid) {
			fmt.Fprintf(os.Stderr, "testenvprobe: kafka at %s: broker process %d: %v\n", addr, *pid, errProcessExited)
			return 2
		}
		last = kafkaReady(ctx, addr)
		if last == nil {
			return 0
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "testenvprobe: kafka at %s not ready after %s: %v\n", addr, *timeout, last)
			return 1
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// kafkaReady performs one full readiness check against the broker at addr.
func kafkaReady(ctx context.Context, addr string) error {
	step, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	d := &kafka.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(step, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	brokers, err := conn.Brokers()
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if len(brokers) == 0 {
		return errors.New("metadata: no brokers registered")
	}
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("metadata: controller: %w", err)
	}
	cc, err := d.DialContext(step, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("dial controller: %w", err)
	}
	defer cc.Close()
	if err := cc.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: probeTopic, NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		return fmt.Errorf("create topic %s: %w", probeTopic, err)
	}
	parts, err := conn.ReadPartitions(probeTopic)
	if err != nil {
		return fmt.Errorf("metadata for %s: %w", probeTopic, err)
	}
	if len(parts) == 0 || parts[0].Leader.Host == "" {
		return fmt.Errorf("topic %s has no leader yet", probeTopic)
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        probeTopic,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		MaxAttempts:  1,
		WriteTimeout: 5 * time.Second,
	}
	defer w.Close()
	if err := w.WriteMessages(step, kafka.Message{Value: []byte("ready")}); err != nil {
		return fmt.Errorf("produce to %s: %w", probeTopic, err)
	}
	return nil
}
