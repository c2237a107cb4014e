package dashboard

import "time"

// Source is what the dashboard shows. The demo implements it over its
// pipeline (and, once they run in the demo, its trainer and scorer). Its
// methods are called once per Config.Sample from the sampling goroutine,
// concurrently with the parts they read, so they must be safe for that and
// cheap (counters and snapshots the parts keep anyway).
type Source interface {
	// Pipeline returns the ingest pipeline's counters, lag, latency
	// histogram and replay progress.
	Pipeline() Pipeline
	// Learning returns the trainer's learning curve; the zero Learning
	// when no trainer runs.
	Learning() Learning
	// Segments returns the segment sizes, in display order; nil when no
	// scorer runs.
	Segments() []Segment
}

// Pipeline is a reading of the ingest pipeline. Counters are totals since
// the process started; the dashboard derives rates.
type Pipeline struct {
	Consumed     int64 `json:"consumed"`
	Valid        int64 `json:"valid"`
	Applied      int64 `json:"applied"`
	Deduplicated int64 `json:"deduplicated"`
	DeadLettered int64 `json:"dead_lettered"`
	// Lag is the records between the assigned partitions' high watermarks
	// and the next offsets to process, summed; -1 while unknown.
	Lag int64 `json:"lag"`
	// Partitions is the number of partitions being consumed.
	Partitions int `json:"partitions"`
	// Latency is the cumulative histogram, in seconds, of the time from a
	// record's Kafka timestamp until its event is durable in Redis
	// (streamprofile_e2e_latency_seconds{stage="ingest",output="profile"}).
	Latency Histogram `json:"-"`
	// Replay is the progress of the replay feeding the pipeline.
	Replay Replay `json:"replay"`
}

// Histogram is a cumulative histogram: Counts[i] observations were at most
// Bounds[i] (increasing upper bounds, +Inf excluded); Count is the total,
// +Inf bucket included.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
}

// Replay is the progress of a replay.
type Replay struct {
	// Published records so far, of Total (0: unknown).
	Published int64 `json:"published"`
	Total     int64 `json:"total"`
	// Done is set once the replay has published everything.
	Done bool `json:"done"`
	// EventTime is the newest event time published (the replayed clock).
	EventTime time.Time `json:"event_time,omitzero"`
}

// Learning is the trainer's progress on the task its curve follows.
type Learning struct {
	// Task is the prediction task of the curve, e.g.
	// "purchase_propensity".
	Task string `json:"task,omitempty"`
	// Curve is the prequential (test-then-train) AUC of each model —
	// "network" against the baselines ("recency", "logistic", "bgnbd")
	// and the champion and challenger — as examples were evaluated, in
	// order.
	Curve []CurvePoint `json:"curve"`
	// Examples is how many examples the trainer has learned from.
	Examples int64 `json:"examples"`
	// Champion is the version of the serving model (0: none yet).
	Champion int64 `json:"champion"`
}

// CurvePoint is one point of a learning curve.
type CurvePoint struct {
	// Evaluated examples when the point was taken.
	Evaluated int64 `json:"evaluated"`
	// EventTime is the newest event time the trainer had seen.
	EventTime time.Time `json:"event_time"`
	// AUC maps a model name to its AUC over the recent window; a model
	// without one (a window of one class) is absent.
	AUC map[string]float64 `json:"auc"`
}

// Segment is one segment's size.
type Segment struct {
	Name    string `json:"name"`
	Members int64  `json:"members"`
}

// Change is one segment membership change.
type Change struct {
	Time    time.Time `json:"time"`
	User    string    `json:"user"`
	Segment string    `json:"segment"`
	// Change is "enter" or "exit".
	Change string `json:"change"`
	// Reason says why, when known (the rule that matched or stopped
	// matching).
	Reason string `json:"reason,omitempty"`
}

// Trigger is one emitted trigger.
type Trigger struct {
	Time time.Time `json:"time"`
	User string    `json:"user"`
	Kind string    `json:"kind"`
	// Explanation says why it fired: the segment entered, the score and
	// the inputs that moved it most.
	Explanation string `json:"explanation,omitempty"`
}
