package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/app"
)

// A profile whose key expired in Redis (no write for the store's TTL) starts
// afresh when the user comes back, even though the processor that wrote it
// still runs and still caches the old state: the cache never outlives the
// key it mirrors. The final state equals the batch recomputation over the
// events after the expiry only.
func TestExpiredProfileStartsAfresh(t *testing.T) {
	// Long enough for the second part to be processed and checked before
	// its own writes expire; the test waits for the first part to expire.
	const ttl = 5 * time.Second
	e := newEnv(t, 2)
	recs := sampleRecords(t)[:8000]
	half := len(recs) / 2
	cfg := e.ingestConfig()
	cfg.Store.TTL = ttl
	runIngester(t, cfg, "ingester", nil)

	publish(t, e.brokers, e.topic, recs[:half])
	e.waitCaughtUp(t, 2*time.Minute)
	// Every key written by the first half expires.
	deadline := time.Now().Add(ttl + 10*time.Second)
	for {
		n := 0
		if err := app.ScanUsers(context.Background(), e.store(t), func(string) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d profiles still stored %s after the first half", n, ttl+10*time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	publish(t, e.brokers, e.topic, recs[half:])
	e.waitCaughtUp(t, 2*time.Minute)
	// Users seen in both halves must hold the second half only.
	evs, last := events(recs[half:])
	both := 0
	firstUsers := map[string]bool{}
	for _, r := range recs[:half] {
		firstUsers[r.Event.ProfileKey()] = true
	}
	for _, ev := range evs {
		if firstUsers[ev.ProfileKey()] {
			both++
		}
	}
	if both == 0 {
		t.Fatal("no user has events in both halves: the test checks nothing")
	}
	e.assertEqualsBatch(t, evs, last)
}
