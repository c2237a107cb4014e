package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
)

// ErasureFollower reads the compacted profile-erasures topic and makes a
// role forget each erased user, then records the role's step on the
// erasure receipt. Its position is kept in Redis per role and partition and
// advanced after the acknowledgement, so a crash repeats a forget
// (harmless) but never skips one. It reads partitions directly rather than
// through a consumer group: every instance of a role must forget every
// erased user it may hold.
type ErasureFollower struct {
	Brokers []string
	// Step names the role on receipts and positions ("trainer", "scorer").
	Step  string
	Store *features.Store
	// Instance distinguishes several instances of one role (each keeps its
	// own position). Default "0".
	Instance string
	// Forget drops what the role holds about the record's users.
	Forget func(ctx context.Context, rec features.ErasureRecord) error
	Logger *slog.Logger
}

func (f *ErasureFollower) posKey() string {
	inst := f.Instance
	if inst == "" {
		inst = "0"
	}
	return f.Store.Config().Prefix + ":erasure-pos:{" + f.Step + "/" + inst + "}"
}

// Run follows erasures until ctx is done. Errors are logged and retried:
// the follower never stops the role it serves.
func (f *ErasureFollower) Run(ctx context.Context) error {
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	var parts []int
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 30*time.Second) {
		var err error
		if parts, err = f.partitions(ctx); err == nil && len(parts) > 0 {
			break
		}
		f.Logger.Debug("erasures: topic not available yet", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.follow(ctx, p)
		}()
	}
	wg.Wait()
	return nil
}

func (f *ErasureFollower) partitions(ctx context.Context) ([]int, error) {
	client := &kafka.Client{Addr: kafka.TCP(f.Brokers...), Timeout: 5 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{features.ErasureTopic}})
	if err != nil {
		return nil, err
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, fmt.Errorf("erasures: topic %s unavailable", features.ErasureTopic)
	}
	var ps []int
	for _, p := range md.Topics[0].Partitions {
		ps = append(ps, p.ID)
	}
	return ps, nil
}

func (f *ErasureFollower) follow(ctx context.Context, partition int) {
	rdb := f.Store.Client()
	field := strconv.Itoa(partition)
	start := kafka.FirstOffset
	for {
		n, err := rdb.HGet(ctx, f.posKey(), field).Int64()
		if err == nil {
			start = n
			break
		}
		if errors.Is(err, context.Canceled) || ctx.Err() != nil {
			return
		}
		if errors.Is(err, redis.Nil) {
			break
		}
		f.Logger.Warn("erasures: reading position failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: f.Brokers, Topic: features.ErasureTopic, Partition: partition,
		MaxWait: 250 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		f.Logger.Warn("erasures: seek failed", "err", err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return // ctx done or reader closed; kafka-go retries broker errors itself
		}
		rec, err := features.DecodeErasure(m.Value)
		if err != nil {
			f.Logger.Warn("erasures: unreadable record skipped", "partition", m.Partition, "offset", m.Offset, "err", err)
		} else {
			for attempt := 0; ; attempt++ {
				err = f.Forget(ctx, rec)
				if err == nil {
					err = f.Store.AckErasure(ctx, rec.Receipt, f.Step, time.Now())
				}
				if err == nil || ctx.Err() != nil {
					break
				}
				f.Logger.Warn("erasures: forgetting failed; retrying", "receipt", rec.Receipt, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 5*time.Second)):
				}
			}
			if ctx.Err() != nil {
				return
			}
		}
		if err := rdb.HSet(ctx, f.posKey(), field, m.Offset+1).Err(); err != nil && ctx.Err() == nil {
			f.Logger.Warn("erasures: saving position failed; the record will be repeated", "err", err)
		}
	}
}
