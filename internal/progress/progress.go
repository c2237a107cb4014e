// Package progress reports how far a long command (replay, demo, bench) has
// got: a progress bar with rate and ETA (the ETA when the total is known)
// when its output (Options.Out, stderr by default) is a terminal, plain
// periodic lines otherwise.
//
// A command counts work with Add (increments) or Set (a running total, as
// stream.ReplayConfig.Progress reports it), prints its own remarks with
// Logf (above the bar, which is redrawn), and ends with Done. Plain lines
// are written from Add and Set, at most one per Options.Interval: work
// that does not advance prints nothing until Done.
//
// Users: replay and demo (the replay, then the ingester, trainer and score
// role catching up), and bench, whose maximum-speed and latency runs are
// one Reporter each, Set from the count the measured worker process reports
// (records consumed, snapshots handled) and Done when the run ends.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Reporter counts work done toward an optional total.
type Reporter struct {
	mu       sync.Mutex
	bar      *progressbar.ProgressBar
	w        io.Writer
	desc     string
	unit     string
	total    int64
	done     int64
	start    time.Time
	last     time.Time
	interval time.Duration
	finished bool
}

// Options configure a Reporter.
type Options struct {
	// Out receives the output. Default os.Stderr.
	Out io.Writer
	// Terminal forces bar (true) or line (false) mode; nil detects whether
	// Out is a terminal.
	Terminal *bool
	// Interval between plain lines. Default 2s.
	Interval time.Duration
	// Unit names what is counted, in rates ("ev/s"). Default "ev".
	Unit string
	// Start is when the work began, for work that ran before its Reporter
	// was made (a consumer that ran alongside a replay and is only waited
	// for afterwards): rates and the final "done in" count from it.
	// Default: the time of New.
	Start time.Time
}

// New returns a reporter for total units (≤ 0: unknown) labelled desc.
func New(desc string, total int64, o Options) *Reporter {
	if o.Out == nil {
		o.Out = os.Stderr
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.Unit == "" {
		o.Unit = "ev"
	}
	term := isTerminal(o.Out)
	if o.Terminal != nil {
		term = *o.Terminal
	}
	start := o.Start
	if start.IsZero() || start.After(time.Now()) {
		start = time.Now()
	}
	r := &Reporter{w: o.Out, desc: desc, unit: o.Unit, total: total, start: start, interval: o.Interval}
	r.last = r.start
	if term {
		max := total
		if max <= 0 {
			max = -1
		}
		r.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(o.Out),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(o.Unit),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return r
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Set records that done units are done in all (a running total; it
// never goes back).
func (r *Reporter) Set(done int64) {
	r.mu.Lock()
	n := done - r.done
	r.mu.Unlock()
	if n > 0 {
		r.Add(n)
	}
}

// Logf prints one line (a newline is added), above the bar in bar mode.
func (r *Reporter) Logf(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil && !r.finished {
		_ = r.bar.Clear()
		fmt.Fprintf(r.w, format+"\n", a...)
		_ = r.bar.RenderBlank()
		_ = r.bar.Set64(r.done)
		return
	}
	fmt.Fprintf(r.w, format+"\n", a...)
}

// Add records n more units done.
func (r *Reporter) Add(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	if r.bar != nil {
		_ = r.bar.Add64(n)
		return
	}
	if now := time.Now(); now.Sub(r.last) >= r.interval {
		r.last = now
		r.line(now)
	}
}

func (r *Reporter) line(now time.Time) {
	el := now.Sub(r.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(r.done) / el
	}
	if r.total > 0 {
		eta := "?"
		if rate > 0 {
			eta = time.Duration(float64(r.total-r.done) / rate * float64(time.Second)).Round(time.Second).String()
		}
		fmt.Fprintf(r.w, "%s: %d/%d (%.0f%%) %.0f %s/s eta %s\n", r.desc, r.done, r.total, 100*float64(r.done)/float64(r.total), rate, r.unit, eta)
		return
	}
	fmt.Fprintf(r.w, "%s: %d %.0f %s/s\n", r.desc, r.done, rate, r.unit)
}

// Done finishes the report with a summary line. It is idempotent.
func (r *Reporter) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	r.finished = true
	if r.bar != nil {
		_ = r.bar.Finish()
	}
	el := time.Since(r.start)
	rate := 0.0
	if el > 0 {
		rate = float64(r.done) / el.Seconds()
	}
	fmt.Fprintf(r.w, "%s: %d done in %s (%.0f %s/s)\n", r.desc, r.done, el.Round(time.Millisecond), rate, r.unit)
}
