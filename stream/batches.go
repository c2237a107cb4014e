package stream

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"
)

// BatchConfig configures RunBatches.
type BatchConfig struct {
	// MaxBatch is the most queued messages handed to one Process call.
	// Required (> 0).
	MaxBatch int
	// FlushInterval flushes once the oldest unflushed work is this old.
	// Required (> 0).
	FlushInterval time.Duration
	// ShutdownTimeout is how long the step under way and the final flush
	// may outlive the end of the generation. Required (> 0).
	ShutdownTimeout time.Duration
	// Tick, when positive, calls Tick then Flush this often while the
	// partition runs (processing-time timers). Default 0: never.
	Tick time.Duration
}

// BatchHandler is a partition processor driven by RunBatches. Its methods
// are called from one goroutine, so it owns its state without locks.
type BatchHandler interface {
	// Process handles queued messages in offset order.
	Process(ctx context.Context, batch []kafka.Message) error
	// Unflushed reports whether processed work is not yet durable, and
	// since when (the processing time of the oldest such message).
	Unflushed() (since time.Time, ok bool)
	// Full reports whether enough is pending to flush now.
	Full() bool
	// Flush makes the processed work durable. final is true for the flush
	// that ends the generation (the partition is handed over flushed).
	Flush(ctx context.Context, final bool) error
	// Tick is called every BatchConfig.Tick, before a Flush (the handler
	// reads its own clock). Handlers without timers do nothing.
	Tick()
}

var errBatchConfig = errors.New("stream: RunBatches needs MaxBatch, FlushInterval and ShutdownTimeout > 0")

// RunBatches runs h over the feed's messages until gen is done or the feed
// fails: it waits for a message, takes what else is queued up to MaxBatch,
// processes the batch, records the partition's lag, and flushes when h is
// Full or its oldest unflushed work is FlushInterval old. When gen ends it
// flushes a last time. The step under way and that final flush outlive gen
// by at most ShutdownTimeout (their context is cancelled then), so a
// partition is handed over flushed rather than left to its next owner to
// redo, which would also repeat what it emitted.
func (f *Feed) RunBatches(gen context.Context, cfg BatchConfig, h BatchHandler) error {
	if cfg.MaxBatch <= 0 || cfg.FlushInterval <= 0 || cfg.ShutdownTimeout <= 0 {
		return errBatchConfig
	}
	ctx, stopWork := context.WithCancel(context.WithoutCancel(gen))
	defer stopWork()
	defer context.AfterFunc(gen, func() { time.AfterFunc(cfg.ShutdownTimeout, stopWork) })()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var tick <-chan time.Time
	if cfg.Tick > 0 {
		ticker := time.NewTicker(cfg.Tick)
		defer ticker.Stop()
		tick = ticker.C
	}
	batch := make([]kafka.Message, 0, cfg.MaxBatch)
	msgs := f.Messages()
	for {
		if gen.Err() != nil {
			return h.Flush(ctx, true)
		}
		batch = batch[:0]
		var deadline <-chan time.Time
		if since, ok := h.Unflushed(); ok {
			wait := cfg.FlushInterval - time.Since(since)
			if wait <= 0 {
				if err := h.Flush(ctx, false); err != nil {
					return err
				}
				continue
			}
			timer.Reset(wait)
			deadline = timer.C
		}
		select {
		case <-gen.Done():
			return h.Flush(ctx, true)
		case err := <-f.Errors():
			return err
		case <-deadline:
			if err := h.Flush(ctx, false); err != nil {
				return err
			}
			continue
		case <-tick:
			h.Tick()
			if err := h.Flush(ctx, false); err != nil {
				return err
			}
			continue
		case m, ok := <-msgs:
			if !ok {
				return h.Flush(ctx, true)
			}
			batch = append(batch, m)
		}
		if deadline != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		// Take what is already queued, up to MaxBatch.
	drain:
		for len(batch) < cfg.MaxBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		if err := h.Process(ctx, batch); err != nil {
			return err
		}
		f.Processed(&batch[len(batch)-1])
		if h.Full() {
			if err := h.Flush(ctx, false); err != nil {
				return err
			}
		}
	}
}
