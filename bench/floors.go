package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/stream"
)

// consumeSpec configures the consume+decode floor: one kafka-go partition
// reader per partition with the pipeline's fetch settings (stream.Group's
// defaults), decoding every value with stream.Decoder and nothing else.
type consumeSpec struct {
	Brokers []string `json:"brokers"`
	Topic   string   `json:"topic"`
	// Ends maps each partition to the offset after its last record.
	Ends          map[int]int64 `json:"ends"`
	MaxBytes      int           `json:"max_bytes"`
	MaxWait       time.Duration `json:"max_wait"`
	QueueCapacity int           `json:"queue_capacity"`
}

// rateResult is a floor's report.
type rateResult struct {
	Events  int64     `json:"events"`
	Invalid int64     `json:"invalid"`
	Seconds float64   `json:"seconds"`
	Rate    float64   `json:"rate"`
	Proc    ProcStats `json:"proc"`
}

func runConsumeFloor(ctx context.Context, spec *consumeSpec, ready func() error) (*rateResult, error) {
	dec := stream.NewDecoder(stream.Limits{}, nil)
	if err := ready(); err != nil {
		return nil, err
	}
	var (
		events, invalid atomic.Int64
		once            sync.Once
		start           time.Time
		cpu0            time.Duration
	)
	begin := func() {
		once.Do(func() { start, cpu0 = time.Now(), cpuTime() })
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(spec.Ends))
	for p, end := range spec.Ends {
		if end <= 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: spec.Brokers, Topic: spec.Topic, Partition: p,
				MinBytes: 1, MaxBytes: spec.MaxBytes, MaxWait: spec.MaxWait, QueueCapacity: spec.QueueCapacity,
			})
			defer r.Close()
			if err := r.SetOffset(kafka.FirstOffset); err != nil {
				errs <- err
				return
			}
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					errs <- fmt.Errorf("bench: consume floor %s/%d: %w", spec.Topic, p, err)
					return
				}
				begin()
				if _, err := dec.Decode(m.Value); err != nil {
					invalid.Add(1)
				}
				events.Add(1)
				if m.Offset+1 >= end {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	el := time.Since(start)
	res := &rateResult{Events: events.Load(), Invalid: invalid.Load(), Seconds: el.Seconds(), Proc: procStats(cpuTime() - cpu0)}
	if el > 0 {
		res.Rate = float64(res.Events) / el.Seconds()
	}
	return res, nil
}

// redisSpec configures the Redis floor: Concurrency goroutines (one per
// partition in the pipeline) each sending pipelines of Depth user writes
// (HSET of a State-sized payload and HINCRBY of a counter on the user's
// hash), without MULTI/EXEC or scripts.
type redisSpec struct {
	Addr         string        `json:"addr"`
	DB           int           `json:"db"`
	Prefix       string        `json:"prefix"`
	Users        int           `json:"users"`
	Depth        int           `json:"depth"`
	Concurrency  int           `json:"concurrency"`
	PayloadBytes int           `json:"payload_bytes"`
	Duration     time.Duration `json:"duration"`
}

// redisResult is the Redis floor's report.
type redisResult struct {
	Pipelines  int64     `json:"pipelines"`
	UserWrites int64     `json:"user_writes"`
	Commands   int64     `json:"commands"`
	Seconds    float64   `json:"seconds"`
	Proc       ProcStats `json:"proc"`
}

func runRedisFloor(ctx context.Context, spec *redisSpec, ready func() error) (*redisResult, error) {
	rdb := redis.NewClient(&redis.Options{Addr: spec.Addr, DB: spec.DB, PoolSize: spec.Concurrency + 2})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("bench: redis floor: %w", err)
	}
	payload := strings.Repeat("x", max(spec.PayloadBytes, 1))
	users := max(spec.Users, 1)
	if err := ready(); err != nil {
		return nil, err
	}
	var pipes, writes atomic.Int64
	start, cpu0 := time.Now(), cpuTime()
	deadline := start.Add(spec.Duration)
	var wg sync.WaitGroup
	errs := make(chan error, spec.Concurrency)
	for g := range spec.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := g * users / max(spec.Concurrency, 1)
			for time.Now().Before(deadline) {
				_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					for range spec.Depth {
						key := spec.Prefix + ":{u" + strconv.Itoa(u) + "}:p"
						p.HSet(ctx, key, "s", payload)
						p.HIncrBy(ctx, key, "n", 1)
						u = (u + 1) % users
					}
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("bench: redis floor: %w", err)
					return
				}
				pipes.Add(1)
				writes.Add(int64(spec.Depth))
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	el := time.Since(start)
	return &redisResult{
		Pipelines: pipes.Load(), UserWrites: writes.Load(), Commands: 2 * writes.Load(),
		Seconds: el.Seconds(), Proc: procStats(cpuTime() - cpu0),
	}, nil
}
