package scorer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/schema"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// childEnv makes the test binary run a scorer instead of the tests: the
// crash test starts it as a separate process and SIGKILLs it.
const childEnv = "STREAMPROFILE_TEST_CHILD_SCORE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// itEnv is one test's real Kafka topics (snapshots in, changes and
// triggers out) and Redis database.
type itEnv struct {
	brokers                  []string
	topic, changes, retarget string
	rdb                      redis.UniversalClient
	prefix                   string
	producer                 *stream.Producer
}

func newIT(t *testing.T, partitions int) *itEnv {
	t.Helper()
	return newITWith(t, partitions, testenv.RedisDB(t), "sp")
}

// newITCluster is newIT on the Redis Cluster.
func newITCluster(t *testing.T, partitions int) *itEnv {
	t.Helper()
	c, prefix := testenv.RedisClusterClient(t)
	return newITWith(t, partitions, c, strings.TrimSuffix(prefix, ":"))
}

func newITWith(t *testing.T, partitions int, rdb redis.UniversalClient, prefix string) *itEnv {
	t.Helper()
	brokers := testenv.Kafka(t)
	e := &itEnv{brokers: brokers, topic: testenv.Topic(t, brokers, partitions), changes: testenv.Topic(t, brokers, 1),
		retarget: testenv.Topic(t, brokers, 1), rdb: rdb, prefix: prefix}
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e.producer = p
	return e
}

// config is the scorer configuration of the test: small batches, fast
// ticks, no idle advance unless the test asks.
func (e *itEnv) config(mod func(*Config)) Config {
	c := Config{Topic: e.topic, ChangesTopic: e.changes, RetargetTopic: e.retarget, Group: "g-" + e.topic, Prefix: e.prefix,
		Lateness: time.Minute, IdleAfter: time.Hour, Tick: 20 * time.Millisecond, FlushInterval: 5 * time.Millisecond,
		Items: ItemsConfig{SaveInterval: 100 * time.Millisecond}}
	if mod != nil {
		mod(&c)
	}
	return c
}

// start runs a scorer in a consumer group until the returned stop.
func (e *itEnv) start(t *testing.T, cfg Config) (*Scorer, func()) {
	t.Helper()
	s, err := New(cfg, e.rdb, e.producer)
	if err != nil {
		t.Fatal(err)
	}
	g, err := stream.NewGroup(stream.GroupConfig{Brokers: e.brokers, GroupID: cfg.Group, Topic: cfg.Topic, SessionTimeout: 6 * time.Second}, s.Factory())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("scorer group: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

func (e *itEnv) publish(t *testing.T, snaps []features.Snapshot) {
	t.Helper()
	msgs := make([]kafka.Message, len(snaps))
	for i := range snaps {
		b, err := snaps[i].Encode()
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Topic: e.topic, Key: []byte(snaps[i].User), Value: b}
	}
	for i := 0; i < len(msgs); i += 1000 {
		if err := e.producer.Send(context.Background(), msgs[i:min(i+1000, len(msgs))]...); err != nil {
			t.Fatal(err)
		}
	}
}

// outputs reads a single-partition output topic from the start.
type outputs struct {
	r   *kafka.Reader
	mu  sync.Mutex
	all []kafka.Message
}

func (e *itEnv) read(t *testing.T, topic string) *outputs {
	t.Helper()
	o := &outputs{r: kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: 0, MaxWait: 50 * time.Millisecond})}
	t.Cleanup(func() { o.r.Close() })
	return o
}

// until reads until ok holds for what was read, or fails after timeout.
func (o *outputs) until(t *testing.T, timeout time.Duration, what string, ok func([]kafka.Message) bool) []kafka.Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok(o.all) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; read %d messages", timeout, what, len(o.all))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		m, err := o.r.ReadMessage(ctx)
		cancel()
		if err == nil {
			o.all = append(o.all, m)
		}
	}
	return o.all
}

// quiet reads for d and returns everything read.
func (o *outputs) quiet(d time.Duration) []kafka.Message {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		m, err := o.r.ReadMessage(ctx)
		cancel()
		if err == nil {
			o.all = append(o.all, m)
		}
	}
	return o.all
}

var (
	changesSchema  = sync.OnceValues(func() (*jsonschema.Schema, error) { return schema.Compile(schema.SegmentChangesV1) })
	retargetSchema = sync.OnceValues(func() (*jsonschema.Schema, error) { return schema.Compile(schema.RetargetV1) })
)

// decodeChanges validates every message against segment-changes-v1 and
// checks its key and deterministic id.
func decodeChanges(t *testing.T, msgs []kafka.Message) []SegmentChange {
	t.Helper()
	sch, err := changesSchema()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]SegmentChange, len(msgs))
	for i, m := range msgs {
		validate(t, sch, m.Value)
		if err := json.Unmarshal(m.Value, &out[i]); err != nil {
			t.Fatal(err)
		}
		c := out[i]
		if string(m.Key) != c.UserID || c.EventID != ChangeID(c.UserID, c.Segment, c.Change, c.At) {
			t.Fatalf("change %s: key %q, event_id not deterministic", m.Value, m.Key)
		}
	}
	return out
}

// decodeTriggers validates every message against retarget-v1.
func decodeTriggers(t *testing.T, msgs []kafka.Message) []Trigger {
	t.Helper()
	sch, err := retargetSchema()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Trigger, len(msgs))
	for i, m := range msgs {
		validate(t, sch, m.Value)
		if err := json.Unmarshal(m.Value, &out[i]); err != nil {
			t.Fatal(err)
		}
		if tr := out[i]; string(m.Key) != tr.UserID || tr.TriggerID != TriggerID(tr.DedupeKey, tr.At) {
			t.Fatalf("trigger %s: key %q, trigger_id not deterministic", m.Value, m.Key)
		}
	}
	return out
}

// sourceEvent returns m's HeaderSourceEvent, if any.
func sourceEvent(m kafka.Message) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == HeaderSourceEvent {
			return string(h.Value), true
		}
	}
	return "", false
}

// story builds realistic snapshots: events applied to feature states as
// the ingester applies them, a snapshot for every behavioural and consent
// event.
type story struct {
	cfg    features.Config
	states map[string]*features.State
	n      int
	snaps  []features.Snapshot
}

func newStory() *story {
	return &story{cfg: features.Config{}.WithDefaults(), states: map[string]*features.State{}}
}

type evOpt func(*stream.Event)

func withBrand(b string) evOpt    { return func(e *stream.Event) { e.Brand = b } }
func withCategory(c string) evOpt { return func(e *stream.Event) { e.Category = c } }

func (s *story) add(user string, typ stream.EventType, item string, price float64, at time.Time, opts ...evOpt) *story {
	s.n++
	ev := stream.Event{Schema: 1, EventID: user + "-" + strconv.Itoa(s.n), Type: typ, UserID: user, TS: at.UTC(), ItemID: item,
		SessionID: user + "-s"}
	if price > 0 {
		ev.Price, ev.PriceMicros = &price, int64(math.Round(price*1e6))
	}
	for _, o := range opts {
		o(&ev)
	}
	return s.apply(ev)
}

// adsOff withdraws the user's consent to ads.
func (s *story) adsOff(user string, at time.Time) *story {
	no := false
	return s.consent(user, at, stream.Consent{Ads: &no})
}

// adsOn grants the user's consent to ads again.
func (s *story) adsOn(user string, at time.Time) *story {
	yes := true
	return s.consent(user, at, stream.Consent{Ads: &yes})
}

// profilingOff withdraws the user's consent to profiling.
func (s *story) profilingOff(user string, at time.Time) *story {
	no := false
	return s.consent(user, at, stream.Consent{Profiling: &no})
}

func (s *story) consent(user string, at time.Time, c stream.Consent) *story {
	s.n++
	return s.apply(stream.Event{Schema: 1, EventID: user + "-" + strconv.Itoa(s.n), Type: stream.TypeConsent, UserID: user,
		TS: at.UTC(), Consent: &c})
}

// apply applies ev and publishes its snapshot as the ingester does: one
// for a behavioural or consent event, none for an event suppressed by a
// profiling withdrawal.
func (s *story) apply(ev stream.Event) *story {
	st := s.states[ev.UserID]
	if st == nil {
		st = &features.State{}
		s.states[ev.UserID] = st
	}
	switch st.Apply(&ev, features.Env{Cfg: &s.cfg, Watermark: 0}) {
	case features.Applied:
	case features.Suppressed:
		return s
	default:
		panic("event not applied: " + ev.EventID)
	}
	if ev.Type != stream.TypeIdentify {
		s.snaps = append(s.snaps, features.NewSnapshot(&ev, ev.UserID, st, &s.cfg,
			features.SnapshotSource{Topic: "clickstream", Offset: int64(s.n), Appended: time.Now()}))
	}
	return s
}

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

// changeLog returns each user's changes as "segment:change" in order.
func changeLog(cs []SegmentChange) map[string][]string {
	out := map[string][]string{}
	for _, c := range cs {
		out[c.UserID] = append(out[c.UserID], c.Segment+":"+c.Change)
	}
	return out
}

const tableCatalogue = `version: 1
segments:
  - name: browser
    rule: views_total >= 4
  - name: converter
    rule: view_to_cart_rate >= 0.5
    exit_rule: view_to_cart_rate < 0.2
  - name: carter
    rule: carts_total > removes_total
    min_dwell: 1h
  - name: apple_fan
    rule: top_brand == "apple"
    exit_rule: '"apple" not in brand_top'
  - name: keen
    rule: purchase_propensity >= 0
`

// Rules, hysteresis, min_dwell and missing scores, through the scorer on
// real Kafka and Redis: each case is a user with a story and the changes
// it must cause, in order; memberships and indexes end as the changes say.
func TestSegmentRulesThroughScorer(t *testing.T) {
	e := newIT(t, 1)
	cat, err := segment.Parse("table.yaml", []byte(tableCatalogue), segment.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := newStory()
	min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	cases := []struct {
		name, user, seg string
		build           func(u string)
		want            []string // the user's changes of seg, in order
	}{
		{"a rule without exit_rule enters once true and stays while true", "u-views", "browser", func(u string) {
			for i := 0; i < 5; i++ {
				s.add(u, stream.TypeView, "v"+strconv.Itoa(i), 0, min(i))
			}
		}, []string{"enter"}},
		{"hysteresis: enter at 0.5, stay down to 0.2, leave below, re-enter at 0.5 only", "u-rate", "converter", func(u string) {
			s.add(u, stream.TypeView, "a", 0, min(0))
			s.add(u, stream.TypeCart, "a", 0, min(1)) // 1/1: enter
			for i, it := range []string{"b", "c", "d", "e"} {
				s.add(u, stream.TypeView, it, 0, min(2+i)) // 1/2 … 1/5 = 0.2: stay
			}
			s.add(u, stream.TypeView, "f", 0, min(6)) // 1/6: leave
			s.add(u, stream.TypeCart, "f", 0, min(7)) // 2/6: stay out
			s.add(u, stream.TypeCart, "g", 0, min(8)) // 3/6 = 0.5: enter
		}, []string{"enter", "exit", "enter"}},
		{"min_dwell holds the exit, then a timer exits with no new event", "u-cart", "carter", func(u string) {
			s.add(u, stream.TypeCart, "c1", 5, min(0))
			s.add(u, stream.TypeRemoveFromCart, "c1", 0, min(2))
		}, []string{"enter", "exit"}},
		{"an exit_rule over a list: stays while apple is among the top brands", "u-apple", "apple_fan", func(u string) {
			s.add(u, stream.TypeView, "a1", 0, min(0), withBrand("apple"))
			s.add(u, stream.TypeView, "s1", 0, min(1), withBrand("samsung"))
			s.add(u, stream.TypeView, "s2", 0, min(2), withBrand("samsung"))
		}, []string{"enter"}},
		{"a missing score is unknown: no entry without a model", "u-keen", "keen", func(u string) {
			s.add(u, stream.TypeView, "k1", 0, min(0))
		}, nil},
	}
	for _, c := range cases {
		c.build(c.user)
	}
	// Time passes in the partition: another user's event two hours later.
	s.add("u-clock", stream.TypeSearch, "", 0, min(120))
	e.publish(t, s.snaps)
	sc, stop := e.start(t, e.config(func(c *Config) { c.Catalogue = func() *segment.Catalogue { return cat } }))
	out := e.read(t, e.changes)
	wantN := 0
	for _, c := range cases {
		wantN += len(c.want)
	}
	msgs := out.until(t, time.Minute, "the changes", func(m []kafka.Message) bool { return len(m) >= wantN })
	msgs = out.quiet(500 * time.Millisecond)
	stop()
	changes := decodeChanges(t, msgs)
	// An event's changes name it in the header; a timer's carry none.
	for i, ch := range changes {
		got, ok := sourceEvent(msgs[i])
		if want := ch.Cause == CauseEvent; ok != want || got != ch.SnapshotID {
			t.Errorf("change %s %s of %s (cause %s, snapshot %q): header %s = %q (present %v)",
				ch.Segment, ch.Change, ch.UserID, ch.Cause, ch.SnapshotID, HeaderSourceEvent, got, ok)
		}
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, ch := range changes {
				if ch.UserID == c.user && ch.Segment == c.seg {
					got = append(got, ch.Change)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("changes of %s: %v, want %v", c.seg, got, c.want)
			}
			in := len(c.want) > 0 && c.want[len(c.want)-1] == "enter"
			raw, err := e.rdb.Get(ctx, e.prefix+":{"+c.user+"}:seg").Bytes()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			var m segment.Membership
			if err := m.UnmarshalBinary(raw); err != nil {
				t.Fatal(err)
			}
			if m.Has(c.seg) != in {
				t.Errorf("stored membership %v: %s member %v, want %v", m, c.seg, m.Has(c.seg), in)
			}
			idx, err := e.rdb.SIsMember(ctx, indexKey(e.prefix, c.seg), c.user).Result()
			if err != nil || idx != in {
				t.Errorf("index of %s: member %v (%v), want %v", c.seg, idx, err, in)
			}
			// The index agrees with every stored membership of the user.
			for _, name := range m.Segments() {
				if ok, _ := e.rdb.SIsMember(ctx, indexKey(e.prefix, name), c.user).Result(); !ok {
					t.Errorf("member of %s, missing from its index", name)
				}
			}
		})
	}
	// The dwell exit came from a timer, at the end of the dwell.
	for _, ch := range changes {
		if ch.UserID == "u-cart" && ch.Change == "exit" {
			if ch.Cause != CauseTimer || !ch.At.Equal(min(60)) || ch.Reason.Note == "" {
				t.Errorf("dwell exit: cause %s at %v note %q; want timer at %v", ch.Cause, ch.At, ch.Reason.Note, min(60))
			}
		}
	}
	infos, err := Segments(ctx, e.rdb, e.prefix, cat)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, in := range infos {
		counts[in.Name] = in.Members
	}
	final := map[string]int64{}
	enters, exits := map[string]int64{}, map[string]int64{}
	for _, ch := range changes {
		if ch.Change == "enter" {
			final[ch.Segment]++
			enters[ch.Segment]++
		} else {
			final[ch.Segment]--
			exits[ch.Segment]++
		}
	}
	for _, in := range infos {
		if counts[in.Name] != final[in.Name] {
			t.Errorf("%s: %d members in the index, the changes leave %d", in.Name, counts[in.Name], final[in.Name])
		}
	}
	st := sc.Stats()
	for seg, n := range enters {
		if st.Segments[seg].Enters != n || st.Segments[seg].Exits != exits[seg] {
			t.Errorf("stats of %s: %+v, emitted %d enters, %d exits", seg, st.Segments[seg], n, exits[seg])
		}
	}
	if st.ChangeLatency.Count == 0 {
		t.Error("no latency measured")
	}
	t.Logf("ingest → change latency p50 %v p99 %v (%d)", st.ChangeLatency.P50, st.ChangeLatency.P99, st.ChangeLatency.Count)
}

// fastClock is a processing clock running speed times faster than the
// wall clock from start.
func fastClock(speed float64) func() time.Time {
	start := time.Now()
	return func() time.Time {
		return start.Add(time.Duration(float64(time.Since(start)) * speed))
	}
}

// A user becomes silent 7 days after the last event with no event at all:
// the timer is stored in Redis by one scorer, and a second scorer, whose
// partition is idle, fires it as its clock follows processing time.
func TestSilentFiresWithoutEvents(t *testing.T) {
	e := newIT(t, 1)
	s := newStory().add("u-quiet", stream.TypeView, "i1", 10, t0)
	e.publish(t, s.snaps)
	out := e.read(t, e.changes)
	_, stop := e.start(t, e.config(nil))
	first := out.until(t, time.Minute, "new:enter", func(m []kafka.Message) bool { return len(m) >= 1 })
	stop()
	if got := changeLog(decodeChanges(t, first)); !slices.Equal(got["u-quiet"], []string{"new:enter"}) {
		t.Fatalf("first scorer: %v", got)
	}
	due, err := e.rdb.ZScore(context.Background(), e.prefix+":timers:{g-"+e.topic+"}:"+e.topic+":0", "u-quiet").Result()
	if err != nil {
		t.Fatalf("no stored timer: %v", err)
	}
	if want := t0.Add(7 * 24 * time.Hour).UnixMilli(); int64(due) != want+1 {
		t.Fatalf("stored timer at %v, want 7 days after the event", time.UnixMilli(int64(due)).UTC())
	}
	// A day of processing time passes every 10ms of wall time.
	sc, stop2 := e.start(t, e.config(func(c *Config) {
		c.IdleAfter, c.Now = 100*time.Millisecond, fastClock(float64(24*time.Hour)/float64(10*time.Millisecond))
	}))
	msgs := out.until(t, time.Minute, "silent:enter", func(m []kafka.Message) bool {
		return slices.Contains(changeLog(decodeChanges(t, m))["u-quiet"], "silent:enter")
	})
	stop2()
	var silent SegmentChange
	for _, c := range decodeChanges(t, msgs) {
		if c.Segment == "silent" && c.Change == "enter" {
			silent = c
		}
	}
	if silent.Cause != CauseTimer || !silent.At.Equal(t0.Add(7*24*time.Hour+time.Millisecond)) {
		t.Fatalf("silent entered at %v by %s; want a timer 7 days after the event", silent.At, silent.Cause)
	}
	if d, _ := silent.Reason.Values["days_since_last_seen"].(float64); d < 7 || d > 7.001 {
		t.Fatalf("reason values %v", silent.Reason.Values)
	}
	if got := changeLog(decodeChanges(t, msgs))["u-quiet"]; !slices.Equal(got[:3], []string{"new:enter", "new:exit", "silent:enter"}) {
		t.Fatalf("changes %v", got)
	}
	if sc.Stats().Timers == 0 {
		t.Fatal("no timer counted")
	}
}

// The same without a restart and without idle time: another user's events
// move the partition's event-time clock past the timer.
func TestSilentFiresInEventTime(t *testing.T) {
	e := newIT(t, 1)
	s := newStory().add("u-gone", stream.TypeView, "i1", 10, t0).add("u-later", stream.TypeView, "i2", 10, t0.Add(8*24*time.Hour))
	e.publish(t, s.snaps)
	out := e.read(t, e.changes)
	e.start(t, e.config(nil))
	msgs := out.until(t, time.Minute, "silent:enter", func(m []kafka.Message) bool {
		return slices.Contains(changeLog(decodeChanges(t, m))["u-gone"], "silent:enter")
	})
	for _, c := range decodeChanges(t, msgs) {
		if c.UserID == "u-gone" && c.Segment == "silent" && (c.Cause != CauseTimer || c.At.After(t0.Add(8*24*time.Hour))) {
			t.Fatalf("silent: %+v", c)
		}
	}
}

// Every kind of trigger fires on its occasion, with its items first and
// never an item the user bought; consent, the quiet period and the daily
// cap suppress, and are counted. (TestTriggerOccasions checks the same
// story in the engine alone.)
func TestTriggersThroughScorer(t *testing.T) {
	t.Run("standalone", func(t *testing.T) { testTriggersThroughScorer(t, newIT(t, 1)) })
	t.Run("cluster", func(t *testing.T) { testTriggersThroughScorer(t, newITCluster(t, 1)) })
}

func testTriggersThroughScorer(t *testing.T, e *itEnv) {
	champion := &registry.Champion{}
	champion.Store(trainedServed(t))
	s := triggerStory()
	e.publish(t, s.snaps)
	sc, stop := e.start(t, e.config(func(c *Config) {
		c.Champion = champion
		c.Triggers = triggerStoryConfig()
	}))
	out := e.read(t, e.retarget)
	total := 0
	for _, k := range triggerStoryWant {
		total += len(k)
	}
	msgs := out.until(t, time.Minute, "the triggers", func(m []kafka.Message) bool { return len(m) >= total })
	msgs = out.quiet(time.Second)
	stop()
	trs := decodeTriggers(t, msgs)
	checkTriggerStory(t, trs, sc.Stats())
	// The price drop names the event that showed the lower price (another
	// user's view); the timers' triggers name none.
	var cheaper string
	for _, sn := range s.snaps {
		if sn.User == "u-other" && sn.ItemID == "lamp" {
			cheaper = sn.ID
		}
	}
	for i, tr := range trs {
		got, ok := sourceEvent(msgs[i])
		want := ""
		if tr.Cause == CausePrice {
			want = cheaper
		}
		if ok != (want != "") || got != want {
			t.Errorf("%s trigger of %s (cause %s): header %s = %q (present %v), want %q",
				tr.Kind, tr.UserID, tr.Cause, HeaderSourceEvent, got, ok, want)
		}
	}
	if st := sc.Stats(); st.TriggerLatency.Count != 1 {
		t.Errorf("ingest → trigger latency measured %d times, want once (the price drop: the rest come from timers)", st.TriggerLatency.Count)
	}
	// The stored memberships and the indexes agree.
	ctx := context.Background()
	for u := range triggerStory().states {
		raw, err := e.rdb.Get(ctx, e.prefix+":{"+u+"}:seg").Bytes()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		var m segment.Membership
		if err := m.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		for _, seg := range sc.Catalogue().Segments() {
			in, err := e.rdb.SIsMember(ctx, indexKey(e.prefix, seg.Name), u).Result()
			if err != nil || in != m.Has(seg.Name) {
				t.Errorf("%s: index of %s says %v (%v), membership %v", u, seg.Name, in, err, m)
			}
		}
	}
}

// Members pages through a segment's index: every member exactly once
// when the index does not change, pages of at most limit, for small sets
// (SSCAN returns them whole) and large ones; bad cursors and unknown
// segments are errors.
func TestMembersPagination(t *testing.T) {
	rdb := testenv.RedisDB(t)
	ctx := context.Background()
	cat, err := segment.Parse("m.yaml", []byte("version: 1\nsegments:\n  - name: small\n    rule: views_total > 0\n  - name: large\n    rule: views_total > 1\n  - name: empty\n    rule: views_total > 2\n"), segment.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{"small": 37, "large": 5000, "empty": 0}
	for name, n := range sizes {
		for i := 0; i < n; i += 500 {
			var ms []any
			for j := i; j < min(i+500, n); j++ {
				ms = append(ms, "user-"+strconv.Itoa(j))
			}
			if err := rdb.SAdd(ctx, indexKey("sp", name), ms...).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, n := range sizes {
		for _, limit := range []int{1, 7, 100, 1000} {
			seen := map[string]int{}
			cursor, pages := "", 0
			for {
				page, next, err := Members(ctx, rdb, "sp", cat, name, cursor, limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > limit {
					t.Fatalf("%s limit %d: page of %d", name, limit, len(page))
				}
				for _, m := range page {
					seen[m]++
				}
				pages++
				if next == "" {
					break
				}
				cursor = next
				if pages > n+2 {
					t.Fatalf("%s limit %d: no end", name, limit)
				}
			}
			if len(seen) != n {
				t.Fatalf("%s limit %d: %d distinct members, want %d", name, limit, len(seen), n)
			}
			for m, k := range seen {
				if k != 1 {
					t.Fatalf("%s limit %d: %s returned %d times", name, limit, m, k)
				}
			}
		}
	}
	for _, bad := range []string{"zz", "0", "1.", "1.!!", "01"} {
		if _, _, err := Members(ctx, rdb, "sp", cat, "small", bad, 10); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
	if _, _, err := Members(ctx, rdb, "sp", cat, "nope", "", 10); !errors.Is(err, ErrUnknownSegment) {
		t.Errorf("unknown segment: %v", err)
	}
	infos, err := Segments(ctx, rdb, "sp", cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.Members != int64(sizes[in.Name]) {
			t.Errorf("%s: %d members, want %d", in.Name, in.Members, sizes[in.Name])
		}
	}
}

// Removing an explanation's top input from a real snapshot changes the
// score by exactly its contribution, in its direction, through the
// scorer's API; and removing the top inputs moves the score more than
// removing as many inputs at random.
func TestExplanationIsFaithful(t *testing.T) {
	served := trainedServed(t)
	champion := &registry.Champion{}
	champion.Store(served)
	p, err := stream.NewProducer(stream.ProducerConfig{Brokers: testenv.Kafka(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sc, err := New(Config{Champion: champion}, testenv.RedisDB(t), p)
	if err != nil {
		t.Fatal(err)
	}
	snaps := heavySnaps(t)
	remove := func(s features.Snapshot, input string) features.Snapshot {
		f := make(map[string]float64, len(s.Features))
		for k, v := range s.Features {
			if k != input {
				f[k] = v
			}
		}
		toks := map[string][]string{}
		for k, v := range s.Tokens {
			if k != input {
				toks[k] = v
			}
		}
		s.Features, s.Tokens = f, toks
		return s
	}
	checked := 0
	var topMoves, otherMoves float64
	for i := 0; i < len(snaps); i += 17 {
		s := snaps[i]
		r, err := sc.Score(&s)
		if err != nil {
			t.Fatal(err)
		}
		if r.ModelVersion != 7 {
			t.Fatalf("model version %d", r.ModelVersion)
		}
		for _, name := range []string{"purchase_propensity", "repeat_purchase_90d", "churn_risk"} {
			ex := r.Explanations[name]
			if len(ex) == 0 {
				continue
			}
			for j := 1; j < len(ex); j++ {
				if math.Abs(ex[j].Contribution) > math.Abs(ex[j-1].Contribution) {
					t.Fatalf("%s: explanation not ordered: %+v", name, ex)
				}
			}
			top := ex[0]
			without := remove(s, top.Feature)
			r2, err := sc.Score(&without)
			if err != nil {
				t.Fatal(err)
			}
			moved := r.Scores[name] - r2.Scores[name]
			if math.Abs(moved-top.Contribution) > 1e-9 || (moved > 0) != (top.Contribution > 0) {
				t.Fatalf("snapshot %d %s: removing %s moved the score by %v, explanation says %v", i, name, top.Feature, moved, top.Contribution)
			}
			if top.Label == "" || top.Label == top.Feature && labels[top.Feature] != "" {
				t.Fatalf("label of %s: %q", top.Feature, top.Label)
			}
			topMoves += math.Abs(moved)
			// An input outside the explanation moves it no more than the
			// smallest one listed.
			for _, k := range []string{"reviews_total", "removes_total", "searches_total"} {
				if slices.ContainsFunc(ex, func(c Contribution) bool { return c.Feature == k }) {
					continue
				}
				w := remove(s, k)
				r3, err := sc.Score(&w)
				if err != nil {
					t.Fatal(err)
				}
				d := math.Abs(r.Scores[name] - r3.Scores[name])
				if len(ex) == sc.cfg.ExplainTop && d > math.Abs(ex[len(ex)-1].Contribution)+1e-12 {
					t.Fatalf("snapshot %d %s: %s (not listed) moves the score by %v, more than the last listed %+v", i, name, k, d, ex[len(ex)-1])
				}
				otherMoves += d
			}
			checked++
		}
	}
	if checked < len(snaps)/17 {
		t.Fatalf("only %d explanations checked", checked)
	}
	t.Logf("%d explanations: mean |move| removing the top input %.4g, removing an unlisted input %.4g",
		checked, topMoves/float64(checked), otherMoves/float64(3*checked))
}

// sortedIDs returns the ids of the changes and triggers in msgs, sorted,
// duplicates kept.
func sortedIDs(t *testing.T, changes, triggers []kafka.Message) []string {
	var ids []string
	for _, c := range decodeChanges(t, changes) {
		ids = append(ids, c.EventID)
	}
	for _, tr := range decodeTriggers(t, triggers) {
		ids = append(ids, tr.TriggerID)
	}
	sort.Strings(ids)
	return ids
}

// An erased user is forgotten: keys, index and timer entries, item-table
// watcher entries (in the saved table too); later snapshots of the user
// are ignored and a price drop of an item they watched reaches no one. A
// user without an erasure marker (who consented again) is left alone.
func TestForgetErasedUser(t *testing.T) {
	e := newIT(t, 1)
	s := newStory()
	s.add("u-del", stream.TypeView, "lamp", 100, t0)
	s.add("u-del", stream.TypeCart, "lamp", 100, t0.Add(time.Minute))
	s.add("u-keep", stream.TypeView, "lamp", 100, t0.Add(2*time.Minute))
	e.publish(t, s.snaps)
	sc, stop := e.start(t, e.config(nil))
	out := e.read(t, e.changes)
	out.until(t, time.Minute, "both users' changes", func(m []kafka.Message) bool {
		log := changeLog(decodeChanges(t, m))
		return len(log["u-del"]) > 0 && len(log["u-keep"]) > 0
	})
	ctx := context.Background()
	fs, err := features.NewStore(e.rdb, features.StoreConfig{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	timers := e.prefix + ":timers:{g-" + e.topic + "}:" + e.topic + ":0"
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _ := e.rdb.ZCard(ctx, timers).Result()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d stored timers, want 2", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := fs.Erase(ctx, []string{"u-del"}, features.Erasure{At: time.Now().UnixMilli(), Receipt: "r-1"}); err != nil {
		t.Fatal(err)
	}
	if err := sc.Forget(ctx, []string{"u-del", "u-keep"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, suf := range []string{"seg", "scores", "timer"} {
		if n, _ := e.rdb.Exists(ctx, e.prefix+":{u-del}:"+suf).Result(); n != 0 {
			t.Errorf("u-del's %s key survived", suf)
		}
		if n, _ := e.rdb.Exists(ctx, e.prefix+":{u-keep}:"+suf).Result(); n != 1 && suf != "scores" {
			t.Errorf("u-keep's %s key is gone", suf)
		}
	}
	if _, err := e.rdb.ZScore(ctx, timers, "u-del").Result(); err != redis.Nil {
		t.Errorf("u-del's timer survived: %v", err)
	}
	if _, err := e.rdb.ZScore(ctx, timers, "u-keep").Result(); err != nil {
		t.Errorf("u-keep's timer is gone: %v", err)
	}
	for _, seg := range sc.Catalogue().Segments() {
		if ok, _ := e.rdb.SIsMember(ctx, indexKey(e.prefix, seg.Name), "u-del").Result(); ok {
			t.Errorf("u-del still in the index of %s", seg.Name)
		}
	}
	items, err := e.rdb.HGet(ctx, e.prefix+":ckpt:{g-"+e.topic+"}:"+e.topic+":0", "items").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(items, []byte("u-keep")) || bytes.Contains(items, []byte("u-del")) {
		t.Errorf("saved item table: u-keep present %v, u-del present %v", bytes.Contains(items, []byte("u-keep")), bytes.Contains(items, []byte("u-del")))
	}
	// A late snapshot of the erased user, and a lower price of the lamp.
	late := newStory()
	late.add("u-del", stream.TypeView, "sofa", 10, t0.Add(3*time.Minute))
	late.add("u-other", stream.TypeView, "lamp", 50, t0.Add(4*time.Minute))
	e.publish(t, late.snaps)
	triggers := e.read(t, e.retarget)
	msgs := triggers.until(t, time.Minute, "u-keep's price drop", func(m []kafka.Message) bool {
		for _, tr := range decodeTriggers(t, m) {
			if tr.UserID == "u-keep" && tr.Kind == KindPriceDrop {
				return true
			}
		}
		return false
	})
	stop()
	for _, tr := range decodeTriggers(t, msgs) {
		if tr.UserID == "u-del" {
			t.Errorf("trigger for the erased user: %+v", tr)
		}
	}
	for _, c := range decodeChanges(t, out.quiet(200*time.Millisecond)) {
		if c.UserID == "u-del" && c.At.After(t0.Add(2*time.Minute)) {
			t.Errorf("change for the erased user after its erasure: %+v", c)
		}
	}
	if n, _ := e.rdb.Exists(ctx, e.prefix+":{u-del}:seg", e.prefix+":{u-del}:timer").Result(); n != 0 {
		t.Errorf("the erased user's keys came back")
	}
	if sc.Stats().Erased != 1 {
		t.Errorf("erased %d users, want 1", sc.Stats().Erased)
	}
}

// After a restart the item table is relearnt from where it was last saved,
// which may be far below the checkpoint: those records change no user and
// emit nothing, the checkpoint never moves back, and what they taught (a
// price watcher) is known again.
func TestRestartRelearnsItemTable(t *testing.T) {
	e := newIT(t, 1)
	s := newStory()
	for i := 0; i < 300; i++ {
		u := "u-" + strconv.Itoa(i%40)
		if i == 150 {
			s.add("u-watch", stream.TypeView, "lamp", 100, t0.Add(time.Duration(i)*time.Second))
			continue
		}
		s.add(u, stream.TypeView, "item-"+strconv.Itoa(i), 10, t0.Add(time.Duration(i)*time.Second))
	}
	e.publish(t, s.snaps)
	cfg := e.config(func(c *Config) {
		c.Items.SaveInterval, c.FlushEvents, c.MaxBatch = time.Hour, 20, 10
	})
	ctx := context.Background()
	ckpt := e.prefix + ":ckpt:{" + cfg.Group + "}:" + e.topic + ":0"
	next := func() (int64, int64) {
		v, err := e.rdb.HMGet(ctx, ckpt, "next", "items_next").Result()
		if err != nil || v[0] == nil || v[1] == nil {
			return -1, -1
		}
		a, _ := strconv.ParseInt(v[0].(string), 10, 64)
		b, _ := strconv.ParseInt(v[1].(string), 10, 64)
		return a, b
	}
	_, stop := e.start(t, cfg)
	deadline := time.Now().Add(time.Minute)
	for n, _ := next(); n != int64(len(s.snaps)); n, _ = next() {
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint at %d, want %d", n, len(s.snaps))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	n, items := next()
	if items >= 150 {
		t.Fatalf("item table saved at %d: the test needs it older than the watcher's record", items)
	}
	out := e.read(t, e.changes)
	before := len(out.quiet(time.Second))
	sc2, stop2 := e.start(t, cfg)
	later := newStory().add("u-cheap", stream.TypeView, "lamp", 50, t0.Add(10*time.Minute))
	e.publish(t, later.snaps)
	triggers := e.read(t, e.retarget)
	msgs := triggers.until(t, time.Minute, "the price drop", func(m []kafka.Message) bool { return len(m) > 0 })
	stop2()
	if tr := decodeTriggers(t, msgs); tr[0].UserID != "u-watch" || tr[0].Kind != KindPriceDrop {
		t.Fatalf("trigger %+v", tr[0])
	}
	if n2, _ := next(); n2 != n+1 {
		t.Fatalf("checkpoint %d after one more record, want %d", n2, n+1)
	}
	after := out.quiet(time.Second)
	for _, c := range decodeChanges(t, after[before:]) {
		if c.UserID != "u-cheap" {
			t.Errorf("the relearnt records emitted %+v", c)
		}
	}
	if st := sc2.Stats(); st.Snapshots != 1 || st.Replayed != 0 {
		t.Errorf("second scorer: %d snapshots applied, %d replayed; want 1 and 0", st.Snapshots, st.Replayed)
	}
}
