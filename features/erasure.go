package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErasureTopic is the compacted topic that announces erasures, keyed by the
// stored user id. Every role consumes it and forgets the user.
const ErasureTopic = "profile-erasures"

// ErasureRecord announces that a user was erased.
type ErasureRecord struct {
	Receipt     string    `json:"receipt"`
	User        string    `json:"user"`             // stored id (pseudonym when pseudonymisation is on)
	Linked      []string  `json:"linked,omitempty"` // stored ids merged into the user, erased too
	RequestedAt time.Time `json:"requested_at"`
}

// Encode renders the record as its message value.
func (r ErasureRecord) Encode() ([]byte, error) { return json.Marshal(r) }

// ErrBadErasure is wrapped by DecodeErasure errors.
var ErrBadErasure = errors.New("features: bad erasure record")

// DecodeErasure parses an erasure record.
func DecodeErasure(b []byte) (ErasureRecord, error) {
	var r ErasureRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrBadErasure, err)
	}
	if r.Receipt == "" || r.User == "" {
		return r, fmt.Errorf("%w: receipt and user are required", ErrBadErasure)
	}
	return r, nil
}

// ReceiptKey is the hash that tracks an erasure's progress: fields
// `user`, `requested_at`, `status`, and one `step:<name>` per completed step
// (RFC 3339 time), written by the API and by every role that forgets the
// user.
func (s *Store) ReceiptKey(receipt string) string {
	return s.cfg.Prefix + ":erasure:{" + receipt + "}"
}

// AckErasure records that step (for example "trainer" or "scorer")
// finished forgetting the user of the receipt.
func (s *Store) AckErasure(ctx context.Context, receipt, step string, at time.Time) error {
	key := s.ReceiptKey(receipt)
	// Only acknowledge receipts that exist: an erasure record replayed long
	// after its receipt expired must not create a new one.
	n, err := s.rdb.Exists(ctx, key).Result()
	if err != nil || n == 0 {
		return err
	}
	return s.rdb.HSet(ctx, key, "step:"+step, at.UTC().Format(time.RFC3339Nano)).Err()
}

// AckErasureCmd adds the acknowledgement to a pipeline.
func (s *Store) AckErasureCmd(ctx context.Context, p redis.Pipeliner, receipt, step string, at time.Time) {
	p.HSet(ctx, s.ReceiptKey(receipt), "step:"+step, at.UTC().Format(time.RFC3339Nano))
}
