package scorer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/stream"
)

// Consent snapshots through the scorer on real Kafka and Redis. A user who
// withdrew ads consent after a cart gets no trigger when the cart's timer
// fires (counted as suppressed), while a user who did not withdraw does. A
// user who withdrew profiling consent leaves every segment at once (cause
// consent, the consent event named in the header), gets no trigger (no
// cart abandonment, no price drop) and no change after that, and keeps no
// key but its stamp: after the checkpoint is lost, the scorer re-reads the
// topic and emits nothing about the user again.
func TestConsentThroughScorer(t *testing.T) {
	e := newIT(t, 1)
	champion := &registry.Champion{}
	champion.Store(trainedServed(t))
	s := newStory()
	s.add("u-prof", stream.TypeView, "sofa", 900, minute(0))
	s.add("u-prof", stream.TypeCart, "sofa", 900, minute(1))
	s.add("u-prof", stream.TypeView, "lamp", 100, minute(2))
	s.add("u-keep", stream.TypeView, "lamp", 100, minute(3))
	s.profilingOff("u-prof", minute(4))
	s.add("u-prof", stream.TypeView, "chair", 50, minute(5)) // suppressed: no snapshot
	s.add("u-ads", stream.TypeCart, "phone", 300, minute(5))
	s.adsOff("u-ads", minute(6))
	s.add("u-cart", stream.TypeCart, "phone", 300, minute(5))
	s.add("u-other", stream.TypeView, "lamp", 50, minute(10))
	s.add("u-clock", stream.TypeSearch, "", 0, minute(4*60))
	var consentID string
	behavioural := 0
	for _, sn := range s.snaps {
		switch {
		case sn.IsConsent() && sn.ProfilingOff:
			consentID = sn.ID
		case !sn.IsConsent():
			behavioural++
		}
	}
	e.publish(t, s.snaps)
	cfg := e.config(func(c *Config) {
		c.Champion = champion
		c.Triggers = triggerStoryConfig()
	})
	sc, stop := e.start(t, cfg)
	changes, retarget := e.read(t, e.changes), e.read(t, e.retarget)
	retarget.until(t, time.Minute, "u-cart's and u-keep's triggers", func(m []kafka.Message) bool {
		cart, drop := false, false
		for _, tr := range decodeTriggers(t, m) {
			cart = cart || tr.UserID == "u-cart" && tr.Kind == KindCartAbandonment
			drop = drop || tr.UserID == "u-keep" && tr.Kind == KindPriceDrop
		}
		return cart && drop
	})
	changes.until(t, time.Minute, "u-prof's exits", func(m []kafka.Message) bool {
		for _, c := range decodeChanges(t, m) {
			if c.UserID == "u-prof" && c.Cause == CauseConsent {
				return true
			}
		}
		return false
	})
	ctx := context.Background()
	ckpt := e.prefix + ":ckpt:{" + cfg.Group + "}:" + e.topic + ":0"
	// waitCheckpoint waits until who has checkpointed every snapshot.
	waitCheckpoint := func(who string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			n, _ := e.rdb.HGet(ctx, ckpt, "next").Int64()
			if n == int64(len(s.snaps)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: checkpoint at %d, want %d", who, n, len(s.snaps))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCheckpoint("first scorer")
	trMsgs, chMsgs := retarget.quiet(time.Second), changes.quiet(time.Second)
	stop()

	for _, tr := range decodeTriggers(t, trMsgs) {
		if tr.UserID == "u-prof" || tr.UserID == "u-ads" {
			t.Errorf("trigger for %s after the withdrawal: %s at %v", tr.UserID, tr.Kind, tr.At)
		}
	}
	exits := 0
	for i, c := range decodeChanges(t, chMsgs) {
		if c.UserID != "u-prof" {
			continue
		}
		if c.Cause != CauseConsent {
			if exits > 0 || c.At.After(minute(4)) {
				t.Errorf("change after the withdrawal: %+v", c)
			}
			continue
		}
		exits++
		if src, _ := sourceEvent(chMsgs[i]); c.Change != "exit" || c.SnapshotID != consentID || src != consentID || !c.At.Equal(minute(4)) {
			t.Errorf("consent change %+v, header %q", c, src)
		}
	}
	st := sc.Stats()
	if st.Consent != 2 || st.Withdrawn != 1 || st.Snapshots != int64(behavioural) || st.Suppressed[SuppressConsent][KindCartAbandonment] != 1 {
		t.Errorf("stats: consent %d, withdrawn %d, snapshots %d (want 2, 1, %d), suppressed %v",
			st.Consent, st.Withdrawn, st.Snapshots, behavioural, st.Suppressed)
	}
	// Only the stamp is kept of u-prof; no index or timer entry.
	for _, suf := range []string{"seg", "scores"} {
		if n, _ := e.rdb.Exists(ctx, e.prefix+":{u-prof}:"+suf).Result(); n != 0 {
			t.Errorf("u-prof's %s key survived", suf)
		}
	}
	fields, err := e.rdb.HGetAll(ctx, e.prefix+":{u-prof}:timer").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 2 {
		t.Errorf("u-prof's timer hash holds %v, want the stamp only", fields)
	}
	for f := range fields {
		if !strings.HasPrefix(f, "o:") && !strings.HasPrefix(f, "q:") {
			t.Errorf("u-prof's timer hash holds %s", f)
		}
	}
	timers := e.prefix + ":timers:{" + cfg.Group + "}:" + e.topic + ":0"
	if _, err := e.rdb.ZScore(ctx, timers, "u-prof").Result(); err != redis.Nil {
		t.Errorf("u-prof's timer survived: %v", err)
	}
	for _, seg := range sc.Catalogue().Segments() {
		if ok, _ := e.rdb.SIsMember(ctx, indexKey(e.prefix, seg.Name), "u-prof").Result(); ok {
			t.Errorf("u-prof still in the index of %s", seg.Name)
		}
	}

	// The checkpoint is lost: the topic is read again from the start. The
	// stamps say every record was applied, u-prof's too.
	if err := e.rdb.Del(ctx, ckpt).Err(); err != nil {
		t.Fatal(err)
	}
	before := len(chMsgs)
	sc2, stop2 := e.start(t, cfg)
	waitCheckpoint("second scorer")
	chMsgs = changes.quiet(time.Second)
	trMsgs = retarget.quiet(100 * time.Millisecond)
	stop2()
	for _, c := range decodeChanges(t, chMsgs[before:]) {
		if c.UserID == "u-prof" {
			t.Errorf("after the restart: change %+v", c)
		}
	}
	for _, tr := range decodeTriggers(t, trMsgs) {
		if tr.UserID == "u-prof" {
			t.Errorf("after the restart: trigger %+v", tr)
		}
	}
	if st := sc2.Stats(); st.Snapshots != 0 || st.Consent != 0 || st.Withdrawn != 0 || st.Replayed != int64(len(s.snaps)) {
		t.Errorf("second scorer applied %d snapshots and %d consent snapshots (%d withdrawals), replayed %d; want none applied, %d replayed",
			st.Snapshots, st.Consent, st.Withdrawn, st.Replayed, len(s.snaps))
	}
}
