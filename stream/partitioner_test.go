package stream

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/segmentio/kafka-go"
)

// RouteBalancer agrees with kafka-go's Java-compatible Murmur2Balancer on
// plain records, and routes a record with a route hash where its raw key
// would go.
func TestRouteBalancerMatchesMurmur2(t *testing.T) {
	var ref kafka.Murmur2Balancer
	ref.Consistent = true
	for n := 1; n <= 12; n++ {
		parts := make([]int, n)
		for i := range parts {
			parts[i] = i
		}
		for i := 0; i < 500; i++ {
			key := []byte(fmt.Sprintf("user-%d-%x", i, i*7919))
			want := ref.Balance(kafka.Message{Key: key}, parts...)
			if got := (RouteBalancer{}).Balance(kafka.Message{Key: key}, parts...); got != want {
				t.Fatalf("n=%d key %s: %d, want %d", n, key, got, want)
			}
			routed := kafka.Message{Key: []byte("pseudonym"), Headers: []kafka.Header{{Key: HeaderRouteHash, Value: []byte(strconv.FormatUint(uint64(Murmur2(key)), 10))}}}
			if got := (RouteBalancer{}).Balance(routed, parts...); got != want {
				t.Fatalf("n=%d routed %s: %d, want %d", n, key, got, want)
			}
		}
	}
}
