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
// event and every applied consent event, keyed by user, to Topic. A
// consent event's snapshot carries only the user's consent after it (see
// features.Snapshot), so that the scorer stops retargeting a user who
// withdrew ads consent, and forgets one who withdrew profiling consent,
// without waiting for a behavioural event that may never come. Identify
// events have no snapshot. The snapshot is sent, and acknowledged, before
// the flush that makes its event durable, so a crash can repeat a
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
	return map[string]string{s.topic(): OutputSnapshot}
}

// topic is the topic snapshots are written to.
func (s *SnapshotStage) topic() string {
	if s.Topic == "" {
		return DefaultSnapshotTopic
	}
	return s.Topic
}

// Partition implements Stage.
func (s *SnapshotStage) Partition(ctx context.Context, p stream.Partition) (PartitionStage, error) {
	cfg := s.Features.WithDefaults()
	return &snapshotPartition{topic: s.topic(), cfg: cfg, headers: s.Headers}, nil
}

type snapshotPartition struct {
	topic   string
	cfg     features.Config
	headers func(e *StageEvent) []kafka.Header
	enc     features.SnapshotEncoder
	scratch []byte // the value being encoded
	slab    []byte // the free tail of the chunk keys and values are cut from
}

// slabChunk is the size of the chunks snapshot keys and values are cut
// from: one allocation per couple of dozen snapshots instead of two per
// snapshot. A chunk is never written again once cut, so a message keeps
// its bytes for as long as anything holds it.
const slabChunk = 32 << 10 // the largest small-object size class

// keep returns a copy of b cut from the slab (b itself may be reused).
func keep[T string | []byte](s *snapshotPartition, b T) []byte {
	if len(b) > slabChunk/4 {
		return append([]byte(nil), b...)
	}
	if len(b) > len(s.slab) {
		s.slab = make([]byte, slabChunk)
	}
	n := copy(s.slab, b)
	out := s.slab[:n:n]
	s.slab = s.slab[n:]
	return out
}

func (s *snapshotPartition) Event(e *StageEvent, out []kafka.Message) []kafka.Message {
	if e.Event.Type == stream.TypeIdentify {
		return out
	}
	b, err := s.enc.Append(s.scratch[:0], e.Event, e.User, e.State, &s.cfg, features.SnapshotSource{
		Topic: e.Msg.Topic, Partition: e.Msg.Partition, Offset: e.Msg.Offset, Appended: e.Msg.Time,
	})
	if err != nil {
		// Snapshots hold only finite numbers and strings; an encoding
		// failure is a bug, and skipping the snapshot is safer than
		// stopping the partition.
		return out
	}
	s.scratch = b
	m := kafka.Message{Topic: s.topic, Key: keep(s, e.User), Value: keep(s, b)}
	if s.headers != nil {
		m.Headers = s.headers(e)
	}
	return append(out, m)
}

func (s *snapshotPartition) Flushed() {}
