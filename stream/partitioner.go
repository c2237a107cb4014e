package stream

import (
	"strconv"

	"github.com/segmentio/kafka-go"
)

// HeaderRouteHash carries the murmur2 hash of the raw profile key a record
// belongs to, when the record's own key is a pseudonym (internal records of
// identity resolution). RouteBalancer partitions such records by it, so they
// land where the raw key's events do.
const HeaderRouteHash = "sp-route-hash"

// HeaderKeyPseudonym marks a record whose key is already a pseudonym.
const HeaderKeyPseudonym = "sp-key-pseudonym"

// Murmur2 is the Java client's murmur2 hash (the default partitioner's),
// ported as kafka-go ports it.
func Murmur2(data []byte) uint32 {
	length := len(data)
	const (
		seed uint32 = 0x9747b28c
		m           = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(length)
	length4 := length / 4
	for i := 0; i < length4; i++ {
		i4 := i * 4
		k := uint32(data[i4]) | uint32(data[i4+1])<<8 | uint32(data[i4+2])<<16 | uint32(data[i4+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	extra := length % 4
	if extra >= 3 {
		h ^= uint32(data[(length&^3)+2]) << 16
	}
	if extra >= 2 {
		h ^= uint32(data[(length&^3)+1]) << 8
	}
	if extra >= 1 {
		h ^= uint32(data[length&^3])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// RouteBalancer partitions by the Java-compatible murmur2 hash of the key,
// or of the raw key named by HeaderRouteHash when present.
type RouteBalancer struct{}

// Balance implements kafka.Balancer.
func (RouteBalancer) Balance(msg kafka.Message, partitions ...int) int {
	h := Murmur2(msg.Key)
	if v, ok := HeaderValue(msg.Headers, HeaderRouteHash); ok {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			h = uint32(n)
		}
	}
	return partitions[(h&0x7fffffff)%uint32(len(partitions))]
}
