package faults

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/internal/testenv"
)

// redis-server (append-only file on) is restarted while the sample streams
// in at 4,000 events/s: the ingester's Redis calls fail, it restarts its
// partitions from their checkpoints with backoff and goes on once the server
// is back. Nothing is lost, nothing applied twice, nothing dead-lettered;
// snapshots repeated by the restart are identical to their first copy.
// This is the quick case that scripts/test.sh runs too (no build tag).
func TestRedisRestartMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("fault case skipped in -short mode")
	}
	e := newEnv(t, envOpts{exclusiveRedis: true})
	r := &row{Case: "redis-server restarted mid-stream (AOF on)"}
	record(t, r)
	recs := sampleRecords(t)
	in := e.ingester("ingester")
	var sent atomic.Int64
	pub := make(chan error, 1)
	go func() { pub <- e.sendPaced(context.Background(), e.messages(recs), 4000, &sent) }()

	e.waitProgress(int64(len(recs)/4), time.Minute)
	at := e.progress()
	start := time.Now()
	testenv.RestartRedis(t)
	down := time.Since(start)
	r.Recovered = dur(e.waitProgress(e.progress(), time.Minute))
	if err := <-pub; err != nil {
		t.Fatal(err)
	}
	caught := e.waitCaughtUp(2*time.Minute, in)
	r.PeakRSS = in.peak.Load()
	in.stop() // the child writes its final counters as it exits
	st := in.readStats()

	dlq, ex := e.verify(r, recs, nil)
	r.Injected = fmt.Sprintf("restart (%s) after %d of %d events", dur(down), at, len(recs))
	r.Notes = fmt.Sprintf("lag 0 %s after the last publish; %d records re-read from checkpoints (%d replay-skipped); "+
		"DLQ %d (0 expected); snapshots: %d distinct, %d repeats, %d differing",
		dur(caught), st.Consumed-int64(len(recs)), st.Replayed, dlq.Records, ex.Distinct, ex.Repeats, ex.Differing)
	t.Logf("%+v", *r)
}
