//go:build faults

package faults

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/stream"
)

// soakEnv overrides the soak's duration (a Go duration), for trying the case
// out; the suite runs the default.
const soakEnv = "STREAMPROFILE_FAULTS_SOAK"

// A bounded set of users (2,000 in four groups of 500) cycles through TTL
// expiry for ten minutes: one group at a time is active for 15 s, at 400
// events/s with wall-clock event times, so each user is idle for 45 s
// between its active periods and its profile (TTL 30 s) expires in between.
// The ingester's RSS and Redis' used_memory must stay flat; each profile
// must hold exactly the events of its user's latest active period.
func TestSoak(t *testing.T) {
	const (
		ttl    = 30 * time.Second
		epoch  = 15 * time.Second
		groups = 4
		per    = 500
		rate   = 400.0
	)
	length := 10 * time.Minute
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", soakEnv, v, err)
		}
		length = d
	}
	e := newEnv(t, envOpts{parts: 4, ttl: ttl})
	r := &row{Case: fmt.Sprintf("soak: %s, 2,000 users cycling through TTL expiry (TTL 30 s)", length)}
	record(t, r)
	content := sampleRecords(t)
	in := e.ingester("ingester")
	waitAssigned(t, e.parts, in)

	// The publisher keeps, per user, the events of its latest active period.
	var mu sync.Mutex
	lastEpoch := map[string]int64{}
	latest := map[string][]stream.Event{}
	var sent atomic.Int64
	start := time.Now()
	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		dec := stream.NewDecoder(stream.Limits{}, nil)
		var seq int64
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				pubErr <- nil
				return
			case <-tick.C:
			}
			now := time.Now().UTC().Truncate(time.Millisecond)
			ep := int64(now.Sub(start) / epoch)
			g := ep % groups
			var msgs []kafka.Message
			mu.Lock()
			for i := 0; i < int(rate/20); i++ {
				c := content[seq%int64(len(content))].Event
				u := "soak-" + strconv.FormatInt(g*per+seq%per, 10)
				seq++
				ev := stream.Event{Schema: 1, EventID: "soak-" + strconv.FormatInt(seq, 10), Type: c.Type, UserID: u, TS: now,
					SessionID: u + "-" + strconv.FormatInt(ep, 10), ItemID: c.ItemID, Category: c.Category, Brand: c.Brand,
					Price: c.Price, Quantity: c.Quantity}
				rec, err := encodeEvent(dec, &ev, 0)
				if err != nil {
					mu.Unlock()
					pubErr <- err
					return
				}
				if lastEpoch[u] != ep || latest[u] == nil {
					lastEpoch[u], latest[u] = ep, latest[u][:0]
				}
				latest[u] = append(latest[u], rec.Event)
				msgs = append(msgs, kafka.Message{Topic: e.topic, Key: []byte(u), Value: rec.Value})
			}
			mu.Unlock()
			if err := e.prod.Send(context.Background(), msgs...); err != nil {
				pubErr <- err
				return
			}
			sent.Add(int64(len(msgs)))
		}
	}()

	type point struct {
		at             time.Duration
		rss, hwm, used int64
		keys, lag      int64
		published      int64
	}
	var points []point
	every := min(30*time.Second, length/10)
	for time.Since(start) < length {
		select {
		case err := <-pubErr:
			t.Fatalf("publishing: %v", err)
		case <-time.After(every):
		}
		if in.exited() {
			t.Fatalf("ingester exited:\n%s", tail(in.log, 20))
		}
		rss, hwm := procMem(in.cmd.Process.Pid)
		keys, _ := e.rdb.DBSize(context.Background()).Result()
		points = append(points, point{time.Since(start), rss, hwm, e.redisUsedMemory(), keys, e.lag(), sent.Load()})
		p := points[len(points)-1]
		t.Logf("%6.0f s: RSS %s (peak %s), Redis used_memory %s, %d keys, lag %d, %d published", p.at.Seconds(),
			mib(p.rss), mib(p.hwm), mib1(p.used), p.keys, p.lag, p.published)
	}
	close(stop)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(2*time.Minute, in)

	// Compare right away: the last group's profiles expire 30 s after
	// their last write. Every user of the last active period must be
	// stored; earlier users may have expired, and if not they must hold
	// their own latest period.
	mu.Lock()
	final := int64(0)
	for _, ep := range lastEpoch {
		final = max(final, ep)
	}
	var evs []stream.Event
	var users []string
	for u, list := range latest {
		evs = append(evs, list...)
		users = append(users, u)
	}
	mu.Unlock()
	v := e.compareProfiles(evs, users, func(u string) bool { return lastEpoch[u] != final })
	r.Lost, r.Dup = v.Lost, v.Dup
	requireExact(t, v)
	r.PeakRSS = in.peak.Load()
	in.stop() // the child writes its final counters as it exits
	st := in.readStats()
	if st.Duplicates != 0 || st.DeadLetter != 0 || st.Consumed != sent.Load() {
		t.Errorf("ingester counted %d duplicates, %d dead letters and %d records for %d published", st.Duplicates,
			st.DeadLetter, st.Consumed, sent.Load())
	}

	// Flat: after two minutes of warm-up, the last third of the run may
	// not exceed the first third by more than a quarter (plus a little
	// absolute slack for allocator granularity).
	var rows []string
	var warm []point
	for _, p := range points {
		rows = append(rows, fmt.Sprintf("| %.0f | %d | %d | %s | %s | %s | %d |", p.at.Seconds(), p.published, p.lag,
			mib(p.rss), mib(p.hwm), mib1(p.used), p.keys))
		if p.at >= min(2*time.Minute, length/5) {
			warm = append(warm, p)
		}
	}
	flat := func(what string, get func(point) int64, slack int64, format func(int64) string) string {
		n := len(warm) / 3
		if n == 0 {
			return what + ": too few samples"
		}
		var first, last int64
		for _, p := range warm[:n] {
			first = max(first, get(p))
		}
		for _, p := range warm[len(warm)-n:] {
			last = max(last, get(p))
		}
		if last > first+first/4+slack {
			t.Errorf("%s grows: %s in the first third after warm-up, %s in the last", what, format(first), format(last))
		}
		return fmt.Sprintf("%s %s → %s", what, format(first), format(last))
	}
	rssFlat := flat("RSS", func(p point) int64 { return p.rss }, 8<<20, mib)
	usedFlat := flat("used_memory", func(p point) int64 { return p.used }, 1<<20, mib1)
	r.Injected = fmt.Sprintf("%d events at %.0f/s, each user idle 45 s between 15 s active periods", sent.Load(), rate)
	r.Notes = fmt.Sprintf("max of the first vs the last third after warm-up: %s, %s; the %d stored profiles (of %d users) "+
		"each hold exactly their user's latest active period, earlier ones expired; DLQ %d", rssFlat, usedFlat, v.Found,
		v.Users, st.DeadLetter)
	section(fmt.Sprintf("Soak (TestSoak): %s", length), fmt.Sprintf("One ingester, four partitions, TTL %s, %d users in %d "+
		"groups, one group active per %s period at %.0f events/s. Samples every %s.\n\n", ttl, groups*per, groups, epoch,
		rate, every)+series("| t (s) | published | lag | ingester RSS | ingester peak RSS | Redis used_memory | keys |\n"+
		"|---|---|---|---|---|---|---|", rows))
}

func mib1(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
