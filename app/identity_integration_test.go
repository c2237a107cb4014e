package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/features/featurestest"
	"github.com/streamprofile/streamprofile/stream"
)

// partitionOf is the partition the Java-compatible murmur2 partitioner
// picks for key.
func partitionOf(key string, n int) int {
	var b kafka.Murmur2Balancer
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return b.Balance(kafka.Message{Key: []byte(key)}, parts...)
}

// An anonymous visitor browses, logs in (identify), browses on under the
// anonymous id and then as the user. The two ids live in different
// partitions. The user's profile ends up with every event exactly once, the
// anonymous id points to it, and replaying everything changes nothing.
func TestIdentifyMergesAnonymousProfileExactlyOnce(t *testing.T) {
	t.Run("plain ids", func(t *testing.T) { testIdentify(t, "") })
	t.Run("pseudonymised ids", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "keys")
		secret := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
		if err := os.WriteFile(keyFile, []byte("k1:"+secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		testIdentify(t, keyFile)
	})
}

func testIdentify(t *testing.T, keyFile string) {
	e := newEnv(t, 4)
	e.keyFile = keyFile
	id := func(raw string) string { return raw }
	if keyFile != "" {
		ps, _, err := app.Privacy(keyFile, false)
		if err != nil {
			t.Fatal(err)
		}
		id = ps.Pseudonym
	}
	user, anon := "user-1", ""
	for i := 0; anon == ""; i++ {
		if c := fmt.Sprintf("anon-%d", i); partitionOf(c, 4) != partitionOf(user, 4) {
			anon = c
		}
	}
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	var evs []stream.Event
	add := func(id string, typ stream.EventType, uid, aid string, at time.Duration, cat string) {
		p := 10.0
		ev := stream.Event{Schema: 1, EventID: id, Type: typ, UserID: uid, AnonymousID: aid, TS: base.Add(at),
			SessionID: "s1", ItemID: "item-" + id, Category: cat, Brand: "acme", Price: &p, PriceMicros: 10e6, Quantity: 1}
		if typ == stream.TypeIdentify {
			ev.ItemID, ev.Category, ev.Brand, ev.Price, ev.PriceMicros = "", "", "", nil, 0
		}
		evs = append(evs, ev)
	}
	for i := 0; i < 5; i++ {
		add(fmt.Sprint("a", i), stream.TypeView, "", anon, time.Duration(i)*time.Minute, "electronics.audio")
	}
	add("a-cart", stream.TypeCart, "", anon, 6*time.Minute, "electronics.audio")
	add("login", stream.TypeIdentify, user, anon, 7*time.Minute, "")
	for i := 0; i < 3; i++ { // stragglers still keyed by the anonymous id
		add(fmt.Sprint("a-late", i), stream.TypeView, "", anon, time.Duration(8+i)*time.Minute, "apparel.shoes")
	}
	for i := 0; i < 4; i++ {
		add(fmt.Sprint("u", i), stream.TypeView, user, "", time.Duration(12+i)*time.Minute, "electronics.audio")
	}
	add("u-buy", stream.TypePurchase, user, "", 20*time.Minute, "electronics.audio")

	send := func(evs []stream.Event) {
		p, err := stream.NewProducer(stream.ProducerConfig{Brokers: e.brokers})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		for _, ev := range evs {
			// Send one at a time, in order, as a browser would.
			b, err := stream.Encode(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Send(context.Background(), kafka.Message{Topic: e.topic, Key: []byte(ev.ProfileKey()), Value: b}); err != nil {
				t.Fatal(err)
			}
		}
	}
	in, stop := e.startIngester(t)
	settle := func() {
		for i := 0; i < 3; i++ { // forwards and merges add records after the first catch-up
			e.waitCaughtUp(t, time.Minute)
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Browse and log in; once the hand-over is done, the stragglers and the
	// user's own events arrive.
	login := 7
	send(evs[:login])
	settle()
	// The user's own events first, then the stragglers still keyed by the
	// anonymous id: the detour makes them older than the user's partition
	// watermark, and they must still count.
	send(evs[login+3:])
	settle()
	send(evs[login : login+3])
	settle()
	cfg := features.Config{}.WithDefaults()
	at := base.Add(time.Hour)
	check := func(when string) {
		t.Helper()
		s := e.store(t)
		st, ok, err := s.LoadOne(context.Background(), id(user))
		if err != nil || !ok {
			t.Fatalf("%s: user profile: ok=%v err=%v", when, ok, err)
		}
		var all []stream.Event
		for _, ev := range evs {
			ev.UserID, ev.AnonymousID = user, ""
			all = append(all, ev)
		}
		want := featurestest.Recompute(all, at, cfg)[user]
		if keyFile != "" {
			n, err := e.rdb.Exists(context.Background(), s.UserKey(user), s.UserKey(anon), s.AliasKey(anon)).Result()
			if err != nil || n != 0 {
				t.Fatalf("%s: keys under raw ids despite pseudonymisation: %d (%v)", when, n, err)
			}
		}
		if d := featurestest.Diff(st.Evaluate(at, &cfg), want, 1e-9); len(d) > 0 {
			t.Fatalf("%s: merged profile differs from one profile with all events: %v", when, d)
		}
		if len(st.Linked) != 1 || st.Linked[0] != id(anon) {
			t.Fatalf("%s: linked ids %v, want [%s]", when, st.Linked, anon)
		}
		alias, err := e.rdb.Get(context.Background(), s.AliasKey(id(anon))).Result()
		if err != nil || alias != id(user) {
			t.Fatalf("%s: alias of %s = %q (%v), want %s", when, anon, alias, err, user)
		}
		ast, ok, err := s.LoadOne(context.Background(), id(anon))
		if err != nil || !ok || ast.MergedInto != id(user) || !ast.Empty() {
			t.Fatalf("%s: anonymous profile: ok=%v err=%v merged-into=%q empty=%v", when, ok, err, ast.MergedInto, ast.Empty())
		}
	}
	check("after the first pass")
	st := in.Topology().Stats()
	if st.Merges.Load() != 1 || st.Forwarded.Load() != 3 {
		t.Fatalf("merges %d (want 1), forwarded %d (want the 3 stragglers)", st.Merges.Load(), st.Forwarded.Load())
	}

	send(evs) // a full replay: every record again
	settle()
	stop()
	check("after a replay")
	if got := st.Merges.Load(); got != 1 {
		t.Fatalf("a replay handed the profile over again: %d merges", got)
	}
}
