package metrics

import (
	"errors"
	"math"
	"sync"
)

// ErrInvalidWindow is returned by [NewPrequential] for a window < 1.
var ErrInvalidWindow = errors.New("metrics: prequential window must be ≥ 1")

// Prequential evaluates a stream of predictions over a sliding window: it
// keeps the last Window (score, label) pairs in a ring buffer and reports
// [AUC], [LogLoss] and [ECE] over them. Scores should be probabilities of the
// positive class for the log-loss and ECE; the AUC accepts any scores.
//
// A Prequential is safe for concurrent use. Each report copies the window,
// so it costs O(Window) memory and, for the AUC, O(Window·log Window) time.
type Prequential struct {
	mu      sync.Mutex
	scores  []float64
	labels  []bool
	next    int // ring position of the next write
	n       int // pairs held, ≤ len(scores)
	dropped uint64
}

// NewPrequential returns an evaluator of the last window pairs.
func NewPrequential(window int) (*Prequential, error) {
	if window < 1 {
		return nil, ErrInvalidWindow
	}
	return &Prequential{scores: make([]float64, window), labels: make([]bool, window)}, nil
}

// Add records a prediction and its outcome, evicting the oldest pair when
// the window is full. A NaN score is not recorded; it is counted by
// [Prequential.Dropped].
func (p *Prequential) Add(score float64, label bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if math.IsNaN(score) {
		p.dropped++
		return
	}
	p.scores[p.next] = score
	p.labels[p.next] = label
	p.next = (p.next + 1) % len(p.scores)
	if p.n < len(p.scores) {
		p.n++
	}
}

// Len returns the number of pairs in the window.
func (p *Prequential) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Window returns the capacity of the window.
func (p *Prequential) Window() int { return len(p.scores) }

// Dropped returns the number of NaN scores that Add refused.
func (p *Prequential) Dropped() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// Reset empties the window and the dropped count.
func (p *Prequential) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next, p.n, p.dropped = 0, 0, 0
}

// snapshot copies the pairs in the window, oldest first.
func (p *Prequential) snapshot() ([]float64, []bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, l := make([]float64, 0, p.n), make([]bool, 0, p.n)
	start := (p.next - p.n + len(p.scores)) % len(p.scores)
	for i := range p.n {
		k := (start + i) % len(p.scores)
		s = append(s, p.scores[k])
		l = append(l, p.labels[k])
	}
	return s, l
}

// Pairs returns copies of the scores and labels in the window, oldest first.
func (p *Prequential) Pairs() ([]float64, []bool) { return p.snapshot() }

// AUC returns [AUC] over the window.
func (p *Prequential) AUC() float64 { return AUC(p.snapshot()) }

// LogLoss returns [LogLoss] over the window.
func (p *Prequential) LogLoss() float64 { return LogLoss(p.snapshot()) }

// ECE returns [ECE] over the window with bins bins.
func (p *Prequential) ECE(bins int) float64 {
	s, l := p.snapshot()
	return ECE(s, l, bins)
}

// Report holds the metrics of one window.
type Report struct {
	N       int     // pairs in the window
	AUC     float64 // see [AUC]
	LogLoss float64 // see [LogLoss]
	ECE     float64 // see [ECE]
}

// Report returns all metrics over one consistent copy of the window.
func (p *Prequential) Report(bins int) Report {
	s, l := p.snapshot()
	return Report{N: len(s), AUC: AUC(s, l), LogLoss: LogLoss(s, l), ECE: ECE(s, l, bins)}
}
