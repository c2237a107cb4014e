package pipeline

import (
	"context"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// DefaultSnapshotTopic is where profile snapshots (training examples and
// scoring input) go.
const DefaultSnapshotTopic = "profile-examples"

// SnapshotStage publishes a features.Snapshot for every applied behavioural
// event, keyed by user, to Topic. The snapshot is sent, and acknowledged,
// before the flush that makes its event durable, so a crash can repeat a
// snapshot (same id) but never lose one.
type SnapshotStage struct {
	// Topic to publish to. Default "profile-examples".
	Topic string
	// Features must be the topology's features configuration.
	Features features.Config
	// Headers, when set, adds headers (such as trace context) to each
	// snapshot message.
	Headers func(e *StageEvent) []kafka.Header
}

// OutputSnapshot names snapshot records in traces and latency metrics.
const OutputSnapshot = "snapshot"

// Outputs implements StageOutputs.
func (s *SnapshotStage) Outputs() map[string]string {
	topic := s.Topic
	if topic == "" {
		topic = DefaultSnapshotTopic
	}
	return map[string]string{topic: OutputSnapshot}
}

// Partition implements Stage.
func (s *SnapshotStage) Partition(ctx context.Context, p stream.Partition) (PartitionStage, error) {
	topic := s.Topic
	if topic == "" {
		topic = DefaultSnapshotTopic
	}
	cfg := s.Features.WithDefaults()
	return &snapshotPartition{topic: topic, cfg: cfg, headers: s.Headers}, nil
}

type snapshotPartition struct {
	topic   string
	cfg     features.Config
	headers func(e *StageEvent) []kafka.Header
}

func (s *snapshotPartition) Event(e *StageEvent, out []kafka.Message) []kafka.Message {
	switch e.Event.Type {
	case stream.TypeConsent, stream.TypeIdentify:
		return out
	}
	snap := features.NewSnapshot(e.Event, e.User, e.State, &s.cfg, features.SnapshotSource{
		Topic: e.Msg.Topic, Partition: e.Msg.Partition, Offset: e.Msg.Offset, Appended: e.Msg.Time,
	})
	b, err := snap.Encode()
	if err != nil {
		// Snapshots hold only finite numbers and strings; an encoding
		// failure is a bug, and skipping the snapshot is safer than
		// stopping the partition.
		return out
	}
	m := kafka.Message{Topic: s.topic, Key: []byte(e.User), Value: b}
	if s.headers != nil {
		m.Headers = s.headers(e)
	}
	return append(out, m)
}

func (s *snapshotPartition) Flushed() {}
