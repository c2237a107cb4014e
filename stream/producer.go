package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// DLQ header names. The original headers are kept and these are added.
const (
	HeaderError           = "error"
	HeaderReason          = "error-reason"
	HeaderSourceTopic     = "source-topic"
	HeaderSourcePartition = "source-partition"
	HeaderSourceOffset    = "source-offset"
)

// DeadLetter builds the dead-letter record for m: the original key, value
// and headers, plus the error, its reason and the source coordinates.
func DeadLetter(dlqTopic string, m kafka.Message, reason Reason, cause error) kafka.Message {
	h := make([]kafka.Header, 0, len(m.Headers)+5)
	h = append(h, m.Headers...)
	msg := string(reason)
	if cause != nil {
		msg = cause.Error()
	}
	h = append(h,
		kafka.Header{Key: HeaderError, Value: []byte(msg)},
		kafka.Header{Key: HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Topic: dlqTopic, Key: m.Key, Value: m.Value, Headers: h}
}

// ProducerConfig configures a Producer. Every field states its default.
type ProducerConfig struct {
	// Brokers are the bootstrap brokers. Required.
	Brokers []string
	// RequiredAcks is the acknowledgement level. Default kafka.RequireAll:
	// a record counts as written once every in-sync replica has it, which
	// is what lets processors commit their offsets after Send returns.
	RequiredAcks kafka.RequiredAcks
	// BatchTimeout bounds how long a partial batch waits. Send hands over
	// whole flushes at once, so a small value costs little. Default 1ms.
	BatchTimeout time.Duration
	// BatchSize is the most messages per partition batch. Default 1000.
	BatchSize int
	// WriteTimeout bounds one produce request. Default 10s.
	WriteTimeout time.Duration
	// MaxAttempts is how many times a batch is tried. Default 10.
	MaxAttempts int
	// Compression of produced batches. Default none.
	Compression kafka.Compression
	// BatchBytes bounds a produce request's record batch; it must not
	// exceed the broker's message.max.bytes (1 MiB by default in Kafka).
	// Default 1 MiB.
	BatchBytes int64
}

// Producer writes messages synchronously, keyed by user with the Java
// client's murmur2 partitioner, so records keyed by the same user from any
// client land in the same partition.
type Producer struct {
	w *kafka.Writer
}

// NewProducer returns a producer. Messages name their topic.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("stream: producer has no brokers")
	}
	if cfg.RequiredAcks == 0 {
		cfg.RequiredAcks = kafka.RequireAll
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 1 << 20
	}
	w := &kafka.Writer{
		Addr:                   kafka.TCP(cfg.Brokers...),
		Balancer:               RouteBalancer{},
		RequiredAcks:           cfg.RequiredAcks,
		BatchTimeout:           cfg.BatchTimeout,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             cfg.BatchBytes,
		WriteTimeout:           cfg.WriteTimeout,
		MaxAttempts:            cfg.MaxAttempts,
		Compression:            cfg.Compression,
		AllowAutoTopicCreation: false,
	}
	return &Producer{w: w}, nil
}

// Send writes msgs and returns once all are acknowledged.
func (p *Producer) Send(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		var we kafka.WriteErrors
		if errors.As(err, &we) {
			// Summarise: one line, not one error per message.
			var first error
			for _, e := range we {
				if e != nil {
					first = e
					break
				}
			}
			return fmt.Errorf("stream: produce: %d of %d messages failed, first error: %w", we.Count(), len(msgs), first)
		}
		return fmt.Errorf("stream: produce: %w", err)
	}
	return nil
}

// Close flushes and closes the producer.
func (p *Producer) Close() error { return p.w.Close() }

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name       string
	Partitions int
	// Compacted sets cleanup.policy=compact.
	Compacted bool
}

// EnsureTopics creates the topics that do not exist yet. Existing topics are
// left as they are.
func EnsureTopics(ctx context.Context, brokers []string, specs ...TopicSpec) error {
	if len(brokers) == 0 {
		return errors.New("stream: no brokers")
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: -1}
		if s.Compacted {
			tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		req.Topics = append(req.Topics, tc)
	}
	var resp *kafka.CreateTopicsResponse
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		resp, err = client.CreateTopics(ctx, req)
		if err == nil {
			break
		}
		var ne net.Error
		if !errors.As(err, &ne) && !errors.Is(err, kafka.BrokerNotAvailable) {
			return fmt.Errorf("stream: create topics: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("stream: create topics: %w", err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("stream: create topic %s: %w", name, terr)
		}
	}
	return waitTopics(ctx, client, specs)
}

// waitTopics waits until every topic has a leader for each partition.
func waitTopics(ctx context.Context, client *kafka.Client, specs []TopicSpec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		ready := err == nil
		if ready {
			for _, t := range md.Topics {
				if t.Error != nil || len(t.Partitions) == 0 {
					ready = false
					break
				}
				for _, p := range t.Partitions {
					if p.Error != nil || p.Leader.Host == "" {
						ready = false
					}
				}
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("partitions without leader")
			}
			return fmt.Errorf("stream: topics %v not ready: %w", names, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
