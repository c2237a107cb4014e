package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
)

// ScanUsers calls fn with every user id that has a state hash, on every
// master of a Cluster. Order is unspecified.
func ScanUsers(ctx context.Context, store *features.Store, fn func(user string) error) error {
	return scanKeys(ctx, store.Client(), store.Config().Prefix+":{*}:p", 1000, func(_ context.Context, _ redis.Cmdable, key string) error {
		u, ok := store.UserOfKey(key)
		if !ok {
			return nil // a key of another layout that the pattern also matches
		}
		return fn(u)
	})
}

// scanKeys calls fn with every key matching match, SCANned count at a time,
// and the client of the node that holds it: every master of a Cluster
// (fn is serialised), else rdb. Order is unspecified.
func scanKeys(ctx context.Context, rdb redis.UniversalClient, match string, count int64,
	fn func(ctx context.Context, c redis.Cmdable, key string) error) error {
	scan := func(ctx context.Context, c redis.Cmdable, fn func(context.Context, redis.Cmdable, string) error) error {
		it := c.Scan(ctx, 0, match, count).Iterator()
		for it.Next(ctx) {
			if err := fn(ctx, c, it.Val()); err != nil {
				return err
			}
		}
		return it.Err()
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		// ForEachMaster runs concurrently; serialise fn.
		var mu sync.Mutex
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return scan(ctx, node, func(ctx context.Context, c redis.Cmdable, key string) error {
				mu.Lock()
				defer mu.Unlock()
				return fn(ctx, c, key)
			})
		})
	}
	return scan(ctx, rdb, fn)
}

// ProfileLine is one line of --profiles-out.
type ProfileLine struct {
	UserID     string                         `json:"user_id"`
	Features   map[string]float64             `json:"features"`
	Affinities map[string][]features.Affinity `json:"affinities,omitempty"`
	Scores     map[string]any                 `json:"scores,omitempty"`
}

// DumpProfiles writes every user's features evaluated at `at` as JSON lines
// sorted by user id, and returns the number of users.
func DumpProfiles(ctx context.Context, store *features.Store, at time.Time, cfg features.Config, w io.Writer,
	extra func(user string, st *features.State, line *ProfileLine) error) (int, error) {
	var users []string
	if err := ScanUsers(ctx, store, func(u string) error { users = append(users, u); return nil }); err != nil {
		return 0, err
	}
	sort.Strings(users)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, u := range users {
		st, ok, err := store.LoadOne(ctx, u)
		if err != nil {
			return 0, fmt.Errorf("app: profile %q: %w", u, err)
		}
		if !ok {
			continue
		}
		p := st.Evaluate(at, &cfg)
		line := ProfileLine{UserID: u, Features: p.Vector.Map(), Affinities: p.Affinities}
		if extra != nil {
			if err := extra(u, &st, &line); err != nil {
				return 0, err
			}
		}
		if err := enc.Encode(&line); err != nil {
			return 0, err
		}
	}
	return len(users), bw.Flush()
}

// Lag returns, per partition of topic, the high watermark minus the
// stored checkpoint (the whole partition when no checkpoint exists).
func Lag(ctx context.Context, brokers []string, topic string, store *features.Store) (map[int]int64, error) {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 5 * time.Second}
	offsets, err := topicOffsets(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	lag := map[int]int64{}
	for _, po := range offsets {
		cp, err := store.LoadCheckpoint(ctx, topic, po.Partition)
		if err != nil {
			return nil, err
		}
		// With no checkpoint the partition is read from its first
		// retained offset.
		next := max(cp.Next, po.FirstOffset, 0)
		lag[po.Partition] = max(0, po.LastOffset-next)
	}
	return lag, nil
}

// topicOffsets returns the first and last (next) offset of every
// partition of topic, as the broker knows them now.
func topicOffsets(ctx context.Context, client *kafka.Client, topic string) ([]kafka.PartitionOffsets, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, fmt.Errorf("app: topic %s: metadata %v", topic, md.Topics)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("app: list offsets %s/%d: %w", topic, po.Partition, po.Error)
		}
	}
	return res.Topics[topic], nil
}

// WaitCaughtUp polls Lag until it is zero on every partition or ctx ends.
func WaitCaughtUp(ctx context.Context, brokers []string, topic string, store *features.Store, poll time.Duration) error {
	for {
		lag, err := Lag(ctx, brokers, topic, store)
		if err == nil {
			total := int64(0)
			for _, l := range lag {
				total += l
			}
			if total == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
