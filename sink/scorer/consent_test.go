package scorer

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/schema"
	"github.com/streamprofile/streamprofile/stream"
)

// minute is t0 plus m minutes.
func minute(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// consentRun runs a story through one engine, scanning timers after every
// record, and lets event time run on for tail after it.
func consentRun(t *testing.T, s *story, tail time.Duration) engineResult {
	t.Helper()
	return engineRun{cfg: Config{Lateness: time.Minute, Triggers: triggerStoryConfig()}, served: trainedServed(t),
		scanEvery: 1, tail: tail}.run(t, s.snaps)
}

// consentIDs returns the ids of the story's consent snapshots.
func consentIDs(s *story) map[string]bool {
	ids := map[string]bool{}
	for _, sn := range s.snaps {
		if sn.IsConsent() {
			ids[sn.ID] = true
		}
	}
	return ids
}

// Ads consent withdrawn after an occasion, then silence: the trigger's
// timer fires with no behavioural snapshot in between, and finds the
// withdrawal in the consent snapshot: suppressed, and counted. Granted
// again before the timer, the trigger fires as usual; granted again only
// after it, the occasion has passed. A consent snapshot scores nothing
// and changes no segment itself.
func TestAdsWithdrawalSuppressesTimerTriggers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		story      func(s *story)
		want       []string // trigger kinds of u
		suppressed map[string]int64
	}{
		{"cart, withdrawn, silence", func(s *story) {
			s.add("u", stream.TypeCart, "phone", 300, minute(0))
			s.adsOff("u", minute(5))
		}, nil, map[string]int64{KindCartAbandonment: 1}},
		{"cart, withdrawn, granted again, silence", func(s *story) {
			s.add("u", stream.TypeCart, "phone", 300, minute(0))
			s.adsOff("u", minute(5))
			s.adsOn("u", minute(10))
		}, []string{KindCartAbandonment}, nil},
		{"cart, withdrawn, silence past the timer, granted again", func(s *story) {
			s.add("u", stream.TypeCart, "phone", 300, minute(0))
			s.adsOff("u", minute(5))
			s.adsOn("u", minute(45))
		}, nil, map[string]int64{KindCartAbandonment: 1}},
		{"browsing, withdrawn, silence", func(s *story) {
			s.add("u", stream.TypeView, "sofa", 900, minute(0))
			s.adsOff("u", minute(1))
		}, nil, map[string]int64{KindBrowseAbandonment: 1}},
		{"withdrawn after the timer was due", func(s *story) {
			// The cart's timer (minute 30) comes before the consent event
			// in event time: it fires first, as before any record.
			s.add("u", stream.TypeCart, "phone", 300, minute(0))
			s.adsOff("u", minute(40))
		}, []string{KindCartAbandonment}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStory()
			tc.story(s)
			// Another user's events move the partition clock on.
			s.add("u-clock", stream.TypeSearch, "", 0, minute(4*60))
			res := consentRun(t, s, 48*time.Hour)
			var got []string
			for _, tr := range res.triggers {
				if tr.UserID == "u" {
					got = append(got, tr.Kind)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("triggers %v, want %v", got, tc.want)
			}
			for _, kind := range Kinds() {
				if n := res.stats.Suppressed[SuppressConsent][kind]; n != tc.suppressed[kind] {
					t.Errorf("%s suppressed for consent %d times, want %d (suppressed: %v)", kind, n, tc.suppressed[kind], res.stats.Suppressed)
				}
			}
			consents := consentIDs(s)
			if res.stats.Consent != int64(len(consents)) || res.stats.Withdrawn != 0 {
				t.Errorf("stats: consent %d, withdrawn %d; want %d and 0", res.stats.Consent, res.stats.Withdrawn, len(consents))
			}
			for _, c := range res.changes {
				if consents[c.SnapshotID] {
					t.Errorf("the consent snapshot caused a change: %+v", c)
				}
			}
		})
	}
}

// A consent snapshot changes nothing the scorer derived from the profile:
// the user's features, tokens, scores and trigger occasions stay as the
// last behavioural snapshot left them; only the ads flag follows it.
func TestConsentSnapshotKeepsProfile(t *testing.T) {
	s := newStory()
	s.add("u", stream.TypeView, "sofa", 900, minute(0), withCategory("furniture.sofa"))
	s.add("u", stream.TypeCart, "sofa", 900, minute(1), withCategory("furniture.sofa"))
	before := consentRun(t, s, 0).users["u"].st
	s.adsOff("u", minute(2))
	after := consentRun(t, s, 0).users["u"].st
	if !after.AdsOff {
		t.Fatal("ads consent withdrawn, AdsOff false")
	}
	after.AdsOff = false
	a, b := before.marshal(nil), after.marshal(nil)
	if string(a) != string(b) {
		t.Errorf("the consent snapshot changed the user's state beyond AdsOff:\nbefore %+v\nafter  %+v", before, after)
	}
}

// A profiling withdrawal forgets the user, as the end of retention does:
// an exit from every segment the user was in, at the consent event's
// time, with cause consent and the consent event's id; no timer, no
// watched item, and nothing about the user after it, although without
// the withdrawal the same stream gives the user a cart and a browse
// trigger, a price drop and timer-driven changes.
func TestProfilingWithdrawalForgetsUser(t *testing.T) {
	build := func(withdraw bool) *story {
		s := newStory()
		s.add("u", stream.TypeView, "sofa", 900, minute(0), withCategory("furniture.sofa"))
		s.add("u", stream.TypeView, "lamp", 100, minute(1), withCategory("furniture.light"))
		s.add("u", stream.TypeCart, "sofa", 900, minute(2), withCategory("furniture.sofa"))
		s.add("u", stream.TypeView, "chair", 80, minute(3), withCategory("furniture.chair"))
		if withdraw {
			s.profilingOff("u", minute(5))
			// Suppressed by the ingester: no snapshot.
			s.add("u", stream.TypeView, "table", 300, minute(6))
		}
		// Another user shows the lamp cheaper, and moves the clock on
		// for weeks.
		s.add("u-other", stream.TypeView, "lamp", 50, minute(10))
		s.add("u-other", stream.TypeSearch, "", 0, minute(60))
		s.add("u-other", stream.TypeSearch, "", 0, minute(20*24*60))
		return s
	}
	tail := 200 * 24 * time.Hour

	control := consentRun(t, build(false), tail)
	kinds := map[string]bool{}
	for _, tr := range control.triggers {
		if tr.UserID == "u" {
			kinds[tr.Kind] = true
		}
	}
	timerChanges := 0
	for _, c := range control.changes {
		if c.UserID == "u" && c.At.After(minute(5)) {
			timerChanges++
		}
	}
	if !kinds[KindCartAbandonment] || !kinds[KindPriceDrop] || timerChanges == 0 {
		t.Fatalf("control: triggers %v, %d changes after minute 5; the test shows nothing", kinds, timerChanges)
	}

	s := build(true)
	var consentID string
	for _, sn := range s.snaps {
		if sn.IsConsent() {
			consentID = sn.ID
			if !sn.ProfilingOff || len(sn.Features) != 0 || sn.Tokens != nil || sn.ItemID != "" {
				t.Fatalf("consent snapshot %+v", sn)
			}
		}
	}
	res := consentRun(t, s, tail)
	for _, tr := range res.triggers {
		if tr.UserID == "u" {
			t.Errorf("trigger for the user after the withdrawal: %s at %v", tr.Kind, tr.At)
		}
	}
	members := map[string]bool{}
	var exits []string
	sch := compileSchema(t, schema.SegmentChangesV1)
	for _, c := range res.changes {
		b, _ := json.Marshal(c)
		validate(t, sch, b)
		if c.UserID != "u" {
			continue
		}
		switch {
		case c.Cause == CauseConsent:
			if c.Change != "exit" || !c.At.Equal(minute(5)) || c.SnapshotID != consentID || c.Reason.Rule != "" ||
				c.Reason.Note != "consent: profiling withdrawn" {
				t.Errorf("consent change %+v", c)
			}
			if !members[c.Segment] {
				t.Errorf("exit from %s, which the user was not in", c.Segment)
			}
			delete(members, c.Segment)
			exits = append(exits, c.Segment)
		case len(exits) > 0 || c.At.After(minute(5)):
			t.Errorf("change after the withdrawal: %+v", c)
		default:
			members[c.Segment] = c.Change == "enter"
			if !members[c.Segment] {
				delete(members, c.Segment)
			}
		}
	}
	if len(exits) == 0 || len(members) > 0 {
		t.Errorf("exits %v; still in %v", exits, members)
	}
	u := res.users["u"]
	if !u.gone || u.st.Due != 0 || u.mem.Len() != 0 {
		t.Errorf("user: gone %v, due %d, membership %v", u.gone, u.st.Due, u.mem)
	}
	if res.stats.Withdrawn != 1 || res.stats.Consent != 1 {
		t.Errorf("stats: withdrawn %d, consent %d; want 1 and 1", res.stats.Withdrawn, res.stats.Consent)
	}
}

// The item table learns nothing from a consent snapshot, and after a
// profiling withdrawal the user watches no item, whether the snapshot is
// applied or relearnt after a restart (learn): the table stays a function
// of the snapshots in offset order.
func TestItemTableAndConsent(t *testing.T) {
	s := newStory()
	s.add("u", stream.TypeView, "lamp", 100, minute(0), withCategory("furniture.light"))
	s.add("w", stream.TypeView, "lamp", 120, minute(1), withCategory("furniture.light"))
	s.adsOff("w", minute(2))
	s.profilingOff("u", minute(3))
	cfg := Config{}.WithDefaults()
	applied, relearnt := newItemTable(cfg.Items), newItemTable(cfg.Items)
	e := newEngine(&cfg, newCounters(), nil)
	for i := range s.snaps {
		sn := &s.snaps[i]
		e.items = relearnt
		e.learn(sn)
		e.items = applied
		if sn.IsConsent() {
			u := &user{id: sn.User}
			u.st.unmarshal(nil)
			e.consent(u, sn, int64(i), 0)
			continue
		}
		e.learn(sn)
	}
	for name, tab := range map[string]*itemTable{"applied": applied, "relearnt": relearnt} {
		var who []string
		for _, w := range tab.watchers("lamp") {
			who = append(who, w.User)
		}
		if !slices.Equal(who, []string{"w"}) {
			t.Errorf("%s: lamp watched by %v, want [w]", name, who)
		}
	}
	if string(applied.marshal()) != string(relearnt.marshal()) {
		t.Error("the applied and the relearnt table differ")
	}
	plain := newItemTable(cfg.Items)
	e.items = plain
	for i := range s.snaps {
		if !s.snaps[i].IsConsent() {
			e.learn(&s.snaps[i])
		}
	}
	plain.forget("u")
	if string(applied.marshal()) != string(plain.marshal()) {
		t.Error("consent snapshots taught the item table something")
	}
}

// A re-grant of profiling consent brings the user back as a new user:
// the next snapshots are scored and enter segments again (cause event).
func TestProfilingRegrantStartsNewUser(t *testing.T) {
	s := newStory()
	s.add("u", stream.TypeView, "sofa", 900, minute(0))
	s.profilingOff("u", minute(1))
	yes := true
	s.consent("u", minute(2), stream.Consent{Profiling: &yes})
	s.add("u", stream.TypeView, "lamp", 100, minute(3))
	res := consentRun(t, s, 0)
	var log []string
	for _, c := range res.changes {
		if c.UserID == "u" {
			log = append(log, c.Change+"/"+c.Cause)
		}
	}
	sawExit, enteredAgain := false, false
	for _, l := range log {
		switch {
		case l == "exit/"+CauseConsent:
			sawExit = true
		case sawExit && l == "enter/"+CauseEvent:
			enteredAgain = true
		}
	}
	if !sawExit || !enteredAgain {
		t.Errorf("changes %v: want exits (consent), then enters again", log)
	}
	if u := res.users["u"]; u.gone || u.st.LastTS != minute(3).UnixMilli() || u.st.AdsOff {
		t.Errorf("user after the re-grant: gone %v, last %d", u.gone, u.st.LastTS)
	}
}
