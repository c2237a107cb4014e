package pipeline

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/streamprofile/streamprofile/features"
)

func consentJSON(id, user, ts, consent string) string {
	return fmt.Sprintf(`{"schema":1,"event_id":%q,"type":"consent","user_id":%q,"ts":%q,"consent":%s}`, id, user, ts, consent)
}

// snapshotsSent decodes the snapshot records the fixture's sender got.
func (f *obsFixture) snapshotsSent(t *testing.T) []features.Snapshot {
	t.Helper()
	var out []features.Snapshot
	for _, m := range f.sender.sent {
		if m.Topic != DefaultSnapshotTopic {
			continue
		}
		s, err := features.DecodeSnapshot(m.Value)
		if err != nil {
			t.Fatalf("%v: %s", err, m.Value)
		}
		if string(m.Key) != s.User {
			t.Fatalf("snapshot of %s keyed %q", s.User, m.Key)
		}
		out = append(out, s)
	}
	return out
}

// A consent event yields exactly one snapshot, of type consent, with the
// user's consent after it and nothing derived; a profiling withdrawal
// too (with profiling_off), and after it nothing but consent snapshots
// leaves the processor: the user's behavioural events are suppressed. An
// identify event yields none.
func TestConsentSnapshots(t *testing.T) {
	f := newObsFixture(t, nil, false)
	view := func(id, ts string) string {
		return fmt.Sprintf(`{"schema":1,"event_id":%q,"type":"view","user_id":"u1","ts":%q,"item_id":"i1","category":"c.d","brand":"b","price":3.5}`, id, ts)
	}
	identify := `{"schema":1,"event_id":"id1","type":"identify","user_id":"u1","anonymous_id":"a1","ts":"2019-10-01T00:00:03Z"}`
	f.run(t,
		record(0, "u1", view("e1", "2019-10-01T00:00:00Z")),
		record(1, "u1", consentJSON("c1", "u1", "2019-10-01T00:00:01Z", `{"ads":false}`)),
		record(2, "u1", view("e2", "2019-10-01T00:00:02Z")),
		record(3, "u1", identify),
		record(4, "u1", consentJSON("c2", "u1", "2019-10-01T00:00:04Z", `{"profiling":false}`)),
		record(5, "u1", view("e3", "2019-10-01T00:00:05Z")),
		record(6, "u1", consentJSON("c3", "u1", "2019-10-01T00:00:06Z", `{"ads":true}`)),
	)
	snaps := f.snapshotsSent(t)
	var got []string
	for _, s := range snaps {
		got = append(got, fmt.Sprintf("%s/%s ads_off=%v profiling_off=%v", s.ID, s.Type, s.AdsOff, s.ProfilingOff))
	}
	want := []string{
		"e1/view ads_off=false profiling_off=false",
		"c1/consent ads_off=true profiling_off=false",
		"e2/view ads_off=true profiling_off=false",
		"c2/consent ads_off=true profiling_off=true",
		"c3/consent ads_off=false profiling_off=true",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("snapshots\n%v\nwant\n%v", got, want)
	}
	for _, s := range snaps {
		if !s.IsConsent() {
			if len(s.Features) == 0 || s.ItemID != "i1" {
				t.Errorf("behavioural snapshot %s without its profile: %+v", s.ID, s)
			}
			continue
		}
		if len(s.Features) != 0 || s.Tokens != nil || s.Recent != nil || s.ItemID != "" || s.Category != "" ||
			s.Brand != "" || s.Price != 0 || s.Amount != 0 {
			t.Errorf("consent snapshot %s carries derived data: %+v", s.ID, s)
		}
		if s.Version != features.SnapshotVersion || s.Source.Topic != "clickstream" {
			t.Errorf("consent snapshot %s: version %d, source %+v", s.ID, s.Version, s.Source)
		}
	}
	// The identify and the suppressed view were applied (their ids are
	// remembered), with no snapshot.
	if n := f.topo.Stats().Suppressed.Load(); n != 1 {
		t.Errorf("%d events suppressed, want 1", n)
	}
}

// A consent snapshot's bytes: the event's id, user, time and type, the
// consent flags, an empty feature map and the source, nothing else.
func TestConsentSnapshotBytes(t *testing.T) {
	f := newObsFixture(t, nil, false)
	rec := record(7, "u1", consentJSON("c1", "u1", "2019-10-01T00:00:01Z", `{"ads":false,"profiling":false}`))
	f.run(t, rec)
	if len(f.sender.sent) != 1 {
		t.Fatalf("%d records sent, want one snapshot", len(f.sender.sent))
	}
	appended, _ := json.Marshal(rec.Time)
	want := `{"v":2,"id":"c1","user_id":"u1","ts":"2019-10-01T00:00:01Z","type":"consent","features":{},` +
		`"ads_off":true,"profiling_off":true,"source":{"topic":"clickstream","partition":0,"offset":7,"appended":` + string(appended) + `}}`
	if got := string(f.sender.sent[0].Value); got != want {
		t.Fatalf("consent snapshot\n%s\nwant\n%s", got, want)
	}
}
