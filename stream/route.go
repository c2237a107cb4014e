package stream

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// Headers of records the pipeline routes between partitions for identity
// resolution. Producers never set them.
const (
	// HeaderReroutedFrom marks an event forwarded to the profile its
	// anonymous id was merged into; the value is that anonymous id and the
	// record key is the target profile.
	HeaderReroutedFrom = "sp-rerouted-from"
	// HeaderInternal marks a pipeline-internal record; the value names its
	// kind (InternalMerge).
	HeaderInternal = "sp-internal"
	// InternalMerge is a MergeRequest: an anonymous profile handed over to
	// the profile it was identified as.
	InternalMerge = "merge"
)

// MergeRequest hands an anonymous profile's state to the user profile it
// was identified as. It is keyed by the target user, so the target's
// partition applies it, exactly once (MergeID is remembered like an event
// id).
type MergeRequest struct {
	MergeID string `json:"merge_id"`
	From    string `json:"from"`
	Into    string `json:"into"`
	TS      int64  `json:"ts"`    // event time of the identify event, unix ms
	State   []byte `json:"state"` // features.State binary encoding
}

// ErrBadInternal is wrapped by errors decoding internal records.
var ErrBadInternal = errors.New("stream: bad internal record")

// DecodeMergeRequest parses a merge record's value.
func DecodeMergeRequest(b []byte) (MergeRequest, error) {
	var m MergeRequest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadInternal, err)
	}
	if m.MergeID == "" || m.From == "" || m.Into == "" {
		return m, fmt.Errorf("%w: merge needs merge_id, from and into", ErrBadInternal)
	}
	return m, nil
}

// HeaderValue returns the value of the first header named key.
func HeaderValue(h []kafka.Header, key string) (string, bool) {
	for _, x := range h {
		if x.Key == key {
			return string(x.Value), true
		}
	}
	return "", false
}
