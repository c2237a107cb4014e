package scorer

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
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
	push := func(u *user) { h.push(u) }
	scan := func() {
		for {
			u, due, ok := h.popDue(clock)
			if !ok {
				return
			}
			e.fire(u, due, clock)
			push(u)
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
	snaps := heavySnaps(t)
	served := trainedServed(t)
	// Lateness is the ingester's (10 minutes, as the sample was built): no
	// snapshot then comes older than the partition clock.
	base := engineRun{cfg: Config{Lateness: 10 * time.Minute, Triggers: triggerConfig()}, served: served, cat: noDeciles(t), tail: 200 * 24 * time.Hour}
	var ref []string
	for _, every := range []int{1, 500, 0} {
		r := base
		r.scanEvery = every
		res := r.run(t, snaps)
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
	snaps := heavySnaps(t)
	changes, retarget := compileSchema(t, schema.SegmentChangesV1), compileSchema(t, schema.RetargetV1)
	bought := map[string][]struct {
		item string
		at   time.Time
	}{}
	for _, sn := range snaps {
		if sn.Type == string(stream.TypePurchase) {
			bought[sn.User] = append(bought[sn.User], struct {
				item string
				at   time.Time
			}{sn.ItemID, sn.TS})
		}
	}
	for _, served := range []*registry.Served{trainedServed(t), nil} {
		res := engineRun{cfg: Config{Triggers: triggerConfig()}, served: served, tail: 200 * 24 * time.Hour}.run(t, snaps)
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

// explain_top -1 turns explanations off and changes nothing else: the
// same triggers and changes, in the same order, with no contributions;
// with the default every trigger scored by the network is explained.
func TestExplainTopOff(t *testing.T) {
	snaps := heavySnaps(t)
	served := trainedServed(t)
	on := engineRun{cfg: Config{Triggers: triggerConfig()}, served: served, tail: 200 * 24 * time.Hour}.run(t, snaps)
	off := engineRun{cfg: Config{Triggers: triggerConfig(), ExplainTop: -1}, served: served, tail: 200 * 24 * time.Hour}.run(t, snaps)
	if len(on.triggers) == 0 || len(on.triggers) != len(off.triggers) || len(on.changes) != len(off.changes) {
		t.Fatalf("on: %d triggers %d changes; off: %d triggers %d changes",
			len(on.triggers), len(on.changes), len(off.triggers), len(off.changes))
	}
	explained := 0
	for i, tr := range off.triggers {
		if len(tr.Explanation) != 0 {
			t.Fatalf("explain_top -1: trigger %s explained: %+v", tr.TriggerID, tr.Explanation)
		}
		if len(on.triggers[i].Explanation) > 0 {
			explained++
		}
		a, b := on.triggers[i], tr
		a.Explanation, b.Explanation = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("trigger %d differs beyond its explanation:\n on  %+v\n off %+v", i, a, b)
		}
	}
	if explained == 0 {
		t.Fatal("default explain_top: no trigger explained")
	}
	if !reflect.DeepEqual(on.changes, off.changes) {
		t.Fatal("segment changes differ with explanations off")
	}
	retarget := compileSchema(t, schema.RetargetV1)
	for _, tr := range off.triggers {
		b, _ := json.Marshal(tr)
		validate(t, retarget, b)
	}
}

// triggerStory has an occasion for every trigger kind and every
// suppression, in one partition, in time order.
func triggerStory() *story {
	s := newStory()
	min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	// A valuable customer, silent for weeks: win-back.
	s.add("u-loyal", stream.TypePurchase, "shoes", 80, min(-40*24*60))
	s.add("u-loyal", stream.TypePurchase, "boots", 120, min(-20*24*60))
	// An old purchase, then a cart left: cart abandonment that does not
	// recommend the purchase.
	s.add("u-cart", stream.TypePurchase, "bought", 50, min(-3*24*60), withCategory("electronics.phone"))
	s.add("u-cart", stream.TypeView, "bought", 50, min(-1), withCategory("electronics.phone"))
	s.add("u-cart", stream.TypeView, "phone-a", 300, min(0), withCategory("electronics.phone"))
	s.add("u-cart", stream.TypeCart, "phone-a", 300, min(1), withCategory("electronics.phone"))
	// The same with ads consent withdrawn: suppressed (consent).
	s.adsOff("u-noads", min(-1))
	s.add("u-noads", stream.TypeCart, "phone-b", 200, min(1))
	// Ads consent withdrawn after the cart, then silence: the timer finds
	// the withdrawal (consent) although no behavioural snapshot follows.
	s.add("u-withdrew", stream.TypeCart, "phone-d", 200, min(2))
	s.adsOff("u-withdrew", min(3))
	// Withdrawn and granted again before the cart is abandoned: triggers.
	s.add("u-regrant", stream.TypeCart, "phone-e", 200, min(2))
	s.adsOff("u-regrant", min(3))
	s.adsOn("u-regrant", min(4))
	// The same within a day of a purchase: suppressed (quiet).
	s.add("u-quiet", stream.TypePurchase, "case", 20, min(0))
	s.add("u-quiet", stream.TypeCart, "phone-c", 200, min(1))
	// Two abandoned carts on one day: the second is capped.
	s.add("u-cap", stream.TypeCart, "tv-a", 500, min(0))
	// A viewed item seen cheaper by someone else: price drop (both also
	// browse with intent: any view is high intent here).
	s.add("u-watch", stream.TypeView, "lamp", 100, min(2))
	s.add("u-other", stream.TypeView, "lamp", 80, min(5))
	// Browsing with intent, then silence.
	s.add("u-browse", stream.TypeView, "sofa", 900, min(10))
	s.add("u-cap", stream.TypeCart, "tv-b", 400, min(60))
	// Time passes in the partition: events hours, then weeks later.
	s.add("u-clock", stream.TypeSearch, "", 0, min(4*60))
	s.add("u-clock", stream.TypeSearch, "", 0, min(20*24*60))
	return s
}

// triggerStoryConfig: any view is high intent, any churn risk high.
func triggerStoryConfig() TriggerConfig {
	return TriggerConfig{BrowseIntent: 1e-9, WinBackChurn: 1e-9}
}

// triggerStoryWant are the triggers of triggerStory, per user, in order.
var triggerStoryWant = map[string][]string{
	"u-loyal":   {KindWinBack},
	"u-cart":    {KindCartAbandonment},
	"u-regrant": {KindCartAbandonment},
	"u-cap":     {KindCartAbandonment},
	"u-watch":   {KindPriceDrop, KindBrowseAbandonment},
	"u-other":   {KindBrowseAbandonment},
	"u-browse":  {KindBrowseAbandonment},
}

func checkTriggerStory(t *testing.T, trs []Trigger, st Stats) {
	t.Helper()
	min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	byUser := map[string][]Trigger{}
	for _, tr := range trs {
		byUser[tr.UserID] = append(byUser[tr.UserID], tr)
	}
	for u := range byUser {
		if _, ok := triggerStoryWant[u]; !ok {
			t.Errorf("%s: unexpected triggers %+v", u, byUser[u])
		}
	}
	for u, kinds := range triggerStoryWant {
		var got []string
		for _, tr := range byUser[u] {
			got = append(got, tr.Kind)
		}
		if !slices.Equal(got, kinds) {
			t.Errorf("%s: triggers %v, want %v", u, got, kinds)
		}
	}
	if tr := byUser["u-cart"]; len(tr) == 1 {
		c := tr[0]
		if c.Items[0].Item != "phone-a" || c.Items[0].Reason != ReasonTrigger || !slices.Equal(c.Context.Items, []string{"phone-a"}) {
			t.Errorf("cart trigger items %+v context %+v", c.Items, c.Context)
		}
		for _, it := range c.Items {
			if it.Item == "bought" {
				t.Errorf("recommended the purchased item: %+v", c.Items)
			}
		}
		if !c.At.Equal(min(31)) || c.Priority != "high" || c.ModelVersion != 7 || c.Score.Value == nil || c.Score.Name != "purchase_propensity" ||
			len(c.Explanation) == 0 || !c.ExpiresAt.Equal(min(31).Add(24*time.Hour)) || c.Cause != CauseTimer {
			t.Errorf("cart trigger %+v", c)
		}
	}
	if tr := byUser["u-watch"]; len(tr) > 0 {
		if c := tr[0].Context; c.OldPrice != 100 || c.NewPrice != 80 || tr[0].Items[0].Item != "lamp" || tr[0].Cause != CausePrice || !tr[0].At.Equal(min(5)) {
			t.Errorf("price drop %+v", tr[0])
		}
	}
	if tr := byUser["u-loyal"]; len(tr) == 1 && (tr[0].Score.Name != "churn_risk" || tr[0].Priority != "low" || !tr[0].At.Equal(min(-6*24*60))) {
		t.Errorf("win-back %+v", tr[0])
	}
	sup := st.Suppressed
	if sup[SuppressConsent][KindCartAbandonment] != 2 || sup[SuppressQuiet][KindCartAbandonment] != 1 || sup[SuppressCap][KindCartAbandonment] != 1 {
		t.Errorf("suppressed %v", sup)
	}
}

// The trigger story in the engine alone.
func TestTriggerOccasions(t *testing.T) {
	res := engineRun{cfg: Config{Lateness: time.Minute, Triggers: triggerStoryConfig()}, served: trainedServed(t), scanEvery: 1}.run(t, triggerStory().snaps)
	checkTriggerStory(t, res.triggers, res.stats)
}

// The scorer's explanation, computed for the present inputs only, is the
// dense occlusion explanation, bit for bit, in order: for every input other
// than the summary features (inputs.SummaryFeatures), nn.Model.Explain
// against the all-absent baseline; for a summary feature of a model with
// derived inputs, the score minus the score of the snapshot re-encoded
// without it (its derived inputs recomputed). The derived inputs are no
// entries of their own. A model without derived inputs (the default
// architecture before they were added) is explained by nn.Model.Explain
// alone, as before.
func TestSparseExplainIsModelExplain(t *testing.T) {
	served := trainedServed(t)
	if len(served.Encoder.DerivedSlots()) == 0 {
		t.Fatal("the test model has no derived inputs")
	}
	old := inputs.DefaultArch()
	old.NumericFeatures = inputs.DefaultNumericFeatures()
	net, err := nn.NewNetwork(old)
	if err != nil {
		t.Fatal(err)
	}
	m, err := net.Snapshot()
	net.Close()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := registry.NewServed(registry.Version{Number: 3, SchemaHash: inputs.SchemaHash(old), Arch: old, CLV: served.Version.CLV}, m)
	if err != nil {
		t.Fatal(err)
	}
	snaps := heavySnaps(t)
	for _, tc := range []struct {
		name   string
		served *registry.Served
	}{{"derived inputs", served}, {"no derived inputs", plain}} {
		t.Run(tc.name, func(t *testing.T) {
			served := tc.served
			var n netScorer
			n.top = 64
			n.bind(served)
			a := served.Encoder.Arch()
			zero := nn.Example{Numeric: make([]float64, len(a.NumericFeatures))}
			inputsN := len(a.NumericFeatures) + len(a.TokenFields)
			var summary []string
			if len(served.Encoder.DerivedSlots()) > 0 {
				summary = inputs.SummaryFeatures()
			}
			summaryEntries := 0
			for i := 0; i < len(snaps); i += 7 {
				s := &snaps[i]
				ex := served.Encoder.Encode(s)
				sum := inputs.SummaryOf(s)
				got, err := n.explain(ex, &sum)
				if err != nil {
					t.Fatal(err)
				}
				all, err := served.Model.Explain(ex, &zero)
				if err != nil {
					t.Fatal(err)
				}
				full, err := served.Model.Predict(ex)
				if err != nil {
					t.Fatal(err)
				}
				without := make([][]float64, len(summary))
				for k, name := range summary {
					w := withoutFeature(*s, name)
					if without[k], err = served.Model.Predict(served.Encoder.Encode(&w)); err != nil {
						t.Fatal(err)
					}
				}
				for h, hi := range n.heads {
					var want []contribution
					for _, c := range all[hi*inputsN : (hi+1)*inputsN] {
						if !inputs.IsDerived(c.Input) && !slices.Contains(summary, c.Input) {
							want = append(want, contribution{Input: c.Input, Delta: c.Delta})
						}
					}
					for k, name := range summary {
						want = append(want, contribution{Input: name, Delta: full[hi] - without[k][hi]})
					}
					want = topOf(want, n.top)
					if !slices.Equal(got[h], want) {
						t.Fatalf("snapshot %d head %d:\n got %v\nwant %v", i, h, got[h], want)
					}
					for _, c := range got[h] {
						if inputs.IsDerived(c.Input) {
							t.Fatalf("snapshot %d: derived input %s listed", i, c.Input)
						}
						if slices.Contains(summary, c.Input) {
							summaryEntries++
						}
					}
				}
			}
			if len(summary) > 0 && summaryEntries == 0 {
				t.Fatal("no explanation listed a summary feature")
			}
		})
	}
}

// withoutFeature returns s without the numeric feature name.
func withoutFeature(s features.Snapshot, name string) features.Snapshot {
	f := make(map[string]float64, len(s.Features))
	for k, v := range s.Features {
		if k != name {
			f[k] = v
		}
	}
	s.Features = f
	return s
}
