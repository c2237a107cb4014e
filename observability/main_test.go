package observability

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: exporters,
// batch processors, servers and Kafka clients must all be shut down. The
// connections of kafka.DefaultTransport, through which testenv.Topic creates
// topics, live for the whole process by design.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"),
	)
}
