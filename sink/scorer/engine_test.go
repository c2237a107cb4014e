package scorer

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/schema"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// engineRun replays snapshots through one engine as a processor does, with
// the partition clock following event time; scanEvery says after how many
// records due timers are fired (0: only when the stream ends). After the
// stream the clock moves on by tail, firing what comes due.
type engineRun struct {
	cfg       Config
	served    *registry.Served
	cat       *segment.Catalogue
	scanEvery int
	tail      time.Duration
}

type engineResult struct {
	changes  []SegmentChange
	triggers []Trigger
	raw      [][]byte // every message value, in order
	stats    Stats
	users    map[string]*user
}

func (r engineRun) run(t testing.TB, snaps []features.Snapshot) engineResult {
	t.Helper()
	cfg := r.cfg.WithDefaults()
	sk, err := segment.NewSketches(cfg.Sketch, segment.ScoreNames()...)
	if err != nil {
		t.Fatal(err)
	}
	counters := newCounters()
	e := newEngine(&cfg, counters, sk)
	users := map[string]*user{}
	e.lookup = func(id string) *user { return users[id] }
	cat := r.cat
	if cat == nil {
		if cat, err = segment.Default(); err != nil {
			t.Fatal(err)
		}
	}
	var clock int64
	var h dueHeap
	push := func(u *user) {
		if !u.gone && u.st.Due > 0 {
			heap.Push(&h, dueEntry{u.st.Due, u})
		}
	}
	scan := func() {
		for h.Len() > 0 && h[0].due <= clock {
			x := heap.Pop(&h).(dueEntry)
			if x.u.gone || x.u.st.Due != x.due {
				continue // superseded
			}
			e.fire(x.u, x.due, clock)
			push(x.u)
		}
	}
	for i := range snaps {
		s := &snaps[i]
		u := users[s.User]
		if u == nil {
			u = &user{id: s.User, o: -2}
			u.st.unmarshal(nil)
			users[s.User] = u
		}
		e.begin(cat, r.served)
		if err := e.snapshot(u, s, int64(i), clock); err != nil {
			t.Fatal(err)
		}
		push(u)
		clock = max(clock, s.TS.UnixMilli()-cfg.Lateness.Milliseconds())
		if r.scanEvery > 0 && (i+1)%r.scanEvery == 0 {
			scan()
		}
	}
	e.begin(cat, r.served)
	scan()
	if len(snaps) > 0 {
		// Time passes with no events, as on an idle partition: the clock
		// reaches each due time in turn.
		end := snaps[len(snaps)-1].TS.Add(r.tail).UnixMilli()
		for h.Len() > 0 && h[0].due <= end {
			clock = max(clock, h[0].due)
			scan()
		}
	}
	res := engineResult{users: users}
	for _, o := range e.out {
		res.raw = append(res.raw, o.msg.Value)
		if o.msg.Topic == cfg.ChangesTopic {
			var c SegmentChange
			if err := json.Unmarshal(o.msg.Value, &c); err != nil {
				t.Fatal(err)
			}
			res.changes = append(res.changes, c)
		} else {
			var tr Trigger
			if err := json.Unmarshal(o.msg.Value, &tr); err != nil {
				t.Fatal(err)
			}
			res.triggers = append(res.triggers, tr)
		}
	}
	res.stats = counters.snapshot()
	return res
}

type dueEntry struct {
	due int64
	u   *user
}

// dueHeap orders timers by due time, then user.
type dueHeap []dueEntry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	return h[i].due < h[j].due || h[i].due == h[j].due && h[i].u.id < h[j].u.id
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ids returns the sorted ids of the changes and triggers.
func (r engineResult) ids() []string {
	var out []string
	for _, c := range r.changes {
		out = append(out, c.EventID)
	}
	for _, t := range r.triggers {
		out = append(out, t.TriggerID)
	}
	sort.Strings(out)
	return out
}

// A catalogue with no decile rules: deciles depend on the order in which
// partitions interleave, everything else only on each user's own stream.
const noDecileCatalogue = `version: 1
segments:
  - name: high_value
    rule: rfm_monetary >= 4 and rfm_frequency >= 3
  - name: new
    rule: tenure_days < 7d
    time_relative: true
  - name: active
    rule: activity_1h >= 3 and days_since_last_seen < 1h
    exit_rule: activity_1h < 1 or days_since_last_seen >= 2h
    min_dwell: 30m
    time_relative: true
  - name: silent
    rule: days_since_last_seen >= 7d and days_since_last_seen < 90d
    time_relative: true
  - name: buyer_at_risk
    rule: purchases_total >= 1 and (churn_risk >= 0.7 or days_since_last_seen >= 14d)
    time_relative: true
  - name: cart_abandoner
    rule: carts_24h >= 1 and abandoned_cart_sessions >= 1 and days_since_last_seen >= 30m
    exit_rule: carts_24h == 0 or days_since_last_seen >= 1d
    time_relative: true
  - name: electronics
    rule: top_category_root == "electronics"
`

func noDeciles(t testing.TB) *segment.Catalogue {
	t.Helper()
	c, err := segment.Parse("nodeciles.yaml", []byte(noDecileCatalogue), segment.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// triggerConfig makes every kind of trigger reachable on the sample.
func triggerConfig() TriggerConfig {
	return TriggerConfig{BrowseIntent: 0.01, WinBackChurn: 0.05, WinBackMinPurchases: 1, WinBackMinRevenue: 1, PriceDrop: 0.01, MaxPerDay: 3}
}

// The changes and triggers of a stream do not depend on when due timers
// are scanned (after every record, every few hundred, or only at the end):
// a timer due before a user's next event fires first either way. Within a
// run no change or trigger is emitted twice.
func TestEngineIndependentOfBatching(t *testing.T) {
	s := sampleData(t)
	served := trainedServed(t)
	// Lateness is the ingester's (10 minutes, as the sample was built): no
	// snapshot then comes older than the partition clock.
	base := engineRun{cfg: Config{Lateness: 10 * time.Minute, Triggers: triggerConfig()}, served: served, cat: noDeciles(t), tail: 200 * 24 * time.Hour}
	var ref []string
	for _, every := range []int{1, 500, 0} {
		r := base
		r.scanEvery = every
		res := r.run(t, s.snaps)
		ids := res.ids()
		for i := 1; i < len(ids); i++ {
			if ids[i] == ids[i-1] {
				t.Fatalf("scan every %d: id %s emitted twice", every, ids[i])
			}
		}
		if ref == nil {
			ref = ids
			kinds := map[string]int{}
			for _, tr := range res.triggers {
				kinds[tr.Kind]++
			}
			t.Logf("%d changes, triggers %v, suppressed %v", len(res.changes), kinds, res.stats.SuppressedTotal())
			continue
		}
		if !slices.Equal(ids, ref) {
			t.Fatalf("scan every %d: %d ids, scan after every record: %d; they differ", every, len(ids), len(ref))
		}
	}
}

func compileSchema(t testing.TB, name string) *jsonschema.Schema {
	t.Helper()
	sch, err := schema.Compile(name)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func validate(t testing.TB, sch *jsonschema.Schema, b []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	if err := sch.Validate(v); err != nil {
		t.Fatalf("%s\ndoes not validate: %v", b, err)
	}
}

// Every message the engine writes on the sample (default catalogue, with
// and without a model) validates against its schema; recommendations
// never hold an item the user bought before the trigger.
func TestEngineMessagesValidateAndSkipPurchases(t *testing.T) {
	s := sampleData(t)
	changes, retarget := compileSchema(t, schema.SegmentChangesV1), compileSchema(t, schema.RetargetV1)
	bought := map[string][]struct {
		item string
		at   time.Time
	}{}
	for _, sn := range s.snaps {
		if sn.Type == string(stream.TypePurchase) {
			bought[sn.User] = append(bought[sn.User], struct {
				item string
				at   time.Time
			}{sn.ItemID, sn.TS})
		}
	}
	for _, served := range []*registry.Served{trainedServed(t), nil} {
		res := engineRun{cfg: Config{Triggers: triggerConfig()}, served: served, tail: 200 * 24 * time.Hour}.run(t, s.snaps)
		if len(res.changes) == 0 || len(res.triggers) == 0 {
			t.Fatalf("model %v: %d changes, %d triggers", served != nil, len(res.changes), len(res.triggers))
		}
		for _, c := range res.changes {
			b, _ := json.Marshal(c)
			validate(t, changes, b)
			if c.EventID != ChangeID(c.UserID, c.Segment, c.Change, c.At) {
				t.Fatalf("event_id %s is not the change's deterministic id", c.EventID)
			}
		}
		for _, tr := range res.triggers {
			b, _ := json.Marshal(tr)
			validate(t, retarget, b)
			for _, rec := range tr.Items {
				for _, p := range bought[tr.UserID] {
					if p.item == rec.Item && !p.at.After(tr.At) {
						t.Fatalf("trigger %s recommends %s, bought at %v", tr.TriggerID, rec.Item, p.at)
					}
				}
			}
		}
		for _, raw := range res.raw {
			var probe map[string]any
			if err := json.Unmarshal(raw, &probe); err != nil {
				t.Fatal(err)
			}
			if _, ok := probe["trigger_id"]; ok {
				validate(t, retarget, raw)
			} else {
				validate(t, changes, raw)
			}
		}
	}
}
