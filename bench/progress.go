package bench

import (
	"sync"
	"time"

	"github.com/streamprofile/streamprofile/internal/progress"
)

// progressLines is the interval of the plain progress lines written when
// Config.Progress is not a terminal (a terminal gets a bar with rate and
// ETA).
const progressLines = 5 * time.Second

// shown describes the progress display of a worker's run: desc labels it,
// total is the count it works toward (≤ 0: unknown), unit names what is
// counted.
type shown struct {
	desc  string
	total int64
	unit  string
}

// follow displays the counts w reports (workerLine.Progress) on
// Config.Progress through internal/progress, from the first count above 0
// (so the rate and ETA leave out the worker's start-up), until the returned
// function is called: it takes the last count, ends the display (its
// summary line) and returns; calling it again does nothing. Call it once the
// worker has reported for the last time (it has exited) to show the final
// count.
func (b *run) follow(w *worker, s shown) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	var rep *progress.Reporter
	idle := time.Now() // when the count was last seen at 0
	set := func(last bool) {
		n := w.progress.Load()
		if n <= 0 {
			idle = time.Now()
			return
		}
		if rep == nil {
			// The work began after idle. A bar takes its rate from its
			// own start: the first count waits for the next tick, so
			// that it is not a count over no time.
			rep = progress.New(s.desc, s.total, progress.Options{Out: b.cfg.Progress, Unit: s.unit,
				Interval: progressLines, Start: idle})
			if !last {
				return
			}
		}
		rep.Set(n)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				set(true)
				if rep != nil {
					rep.Done()
				}
				return
			case <-t.C:
				set(false)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}
