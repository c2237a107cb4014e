package stream

import "time"

// Watermark tracks a partition's event-time progress. The watermark is the
// newest event time seen minus the allowed lateness: an event older than
// the watermark is late. It only moves forward, and it is stored with the
// partition's checkpoint so a restarted processor classifies replayed
// events exactly as the first run did.
type Watermark struct {
	max      int64 // newest event time seen, unix ms (0: none)
	lateness int64
}

// NewWatermark returns a watermark with the given allowed lateness, resumed
// from a stored watermark value (unix ms; 0 when none).
func NewWatermark(lateness time.Duration, stored int64) *Watermark {
	w := &Watermark{lateness: lateness.Milliseconds()}
	if stored > 0 {
		w.max = stored + w.lateness
	}
	return w
}

// Late reports whether an event at ts (unix ms) is older than the
// watermark.
func (w *Watermark) Late(ts int64) bool { return w.max > 0 && ts < w.max-w.lateness }

// Observe advances the watermark with an accepted event's time.
func (w *Watermark) Observe(ts int64) {
	if ts > w.max {
		w.max = ts
	}
}

// Current returns the watermark in unix ms (0 before the first event).
func (w *Watermark) Current() int64 {
	if w.max == 0 {
		return 0
	}
	return w.max - w.lateness
}

// Max returns the newest event time seen, unix ms.
func (w *Watermark) Max() int64 { return w.max }
