package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
)

// ErasureFollower reads the compacted profile-erasures topic from its
// beginning and makes a role forget each erased user, then records the
// role's step on the erasure receipt. Reading everything again on every
// start is cheap (one record per erased user) and rebuilds what the role
// must remember to drop in-flight data of erased users; forgetting and
// acknowledging are idempotent. It reads partitions directly rather than
// through a consumer group: every instance of a role must see every
// erasure. Ready is closed once the records present at start are done, so
// a role can wait for it before it consumes its input.
type ErasureFollower struct {
	Brokers []string
	// Topic of erasure records. Default features.ErasureTopic.
	Topic string
	// Step names the role on receipts ("trainer", "scorer").
	Step  string
	Store *features.Store
	// Instance names this instance of the role in logs. Optional.
	Instance string
	// Forget drops what the role holds about the record's users.
	Forget func(ctx context.Context, rec features.ErasureRecord) error
	Logger *slog.Logger

	once      sync.Once
	ready     chan struct{}
	readyOnce sync.Once
}

// Ready is closed when the erasures present at start have been applied (or
// the topic does not exist yet).
func (f *ErasureFollower) Ready() <-chan struct{} {
	f.once.Do(func() { f.ready = make(chan struct{}) })
	return f.ready
}

// markReady closes Ready's channel, once.
func (f *ErasureFollower) markReady() {
	f.Ready()
	f.readyOnce.Do(func() { close(f.ready) })
}

// Run follows erasures until ctx is done. Errors are logged and retried:
// the follower never stops the role it serves.
func (f *ErasureFollower) Run(ctx context.Context) error {
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	if f.Topic == "" {
		f.Topic = features.ErasureTopic
	}
	var parts []int
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 30*time.Second) {
		var err error
		if parts, err = f.partitions(ctx); err == nil && len(parts) > 0 {
			break
		}
		f.markReady() // no topic yet means no erasure yet
		f.Logger.Debug("erasures: topic not available yet", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	var wg, initial sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		initial.Add(1)
		go func() {
			defer wg.Done()
			f.follow(ctx, p, initial.Done)
		}()
	}
	go func() {
		initial.Wait()
		f.markReady()
	}()
	wg.Wait()
	return nil
}

func (f *ErasureFollower) partitions(ctx context.Context) ([]int, error) {
	client := &kafka.Client{Addr: kafka.TCP(f.Brokers...), Timeout: 5 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{f.Topic}})
	if err != nil {
		return nil, err
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, fmt.Errorf("erasures: topic %s unavailable", f.Topic)
	}
	var ps []int
	for _, p := range md.Topics[0].Partitions {
		ps = append(ps, p.ID)
	}
	return ps, nil
}

// follow applies one partition's erasures; caughtUp is called once the
// records present at start are done.
func (f *ErasureFollower) follow(ctx context.Context, partition int, caughtUp func()) {
	var once sync.Once
	defer once.Do(caughtUp)
	client := &kafka.Client{Addr: kafka.TCP(f.Brokers...), Timeout: 5 * time.Second}
	end := int64(0)
	if res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		f.Topic: {kafka.LastOffsetOf(partition)}}}); err == nil {
		for _, po := range res.Topics[f.Topic] {
			end = max(end, po.LastOffset)
		}
	}
	if end == 0 {
		once.Do(caughtUp)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: f.Brokers, Topic: f.Topic, Partition: partition,
		MaxWait: 250 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
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
		if m.Offset+1 >= end {
			once.Do(caughtUp)
		}
	}
}
