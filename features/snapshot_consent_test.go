package features_test

import (
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/stream"
)

// A consent event's snapshot carries the consent after it and nothing
// derived: no features (the user has a profile), no tokens, no item fields
// (the event had some); after a profiling withdrawal profiling_off, and
// it decodes back as a consent snapshot. A behavioural snapshot never
// says profiling_off: DecodeSnapshot rejects one that does.
func TestConsentSnapshot(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	env := features.Env{Cfg: &cfg}
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	price := 9.5
	var st features.State
	view := stream.Event{Schema: 1, EventID: "v1", Type: stream.TypeView, UserID: "u", TS: t0, ItemID: "i", Category: "a.b",
		Brand: "br", Price: &price, PriceMicros: 9500000}
	st.Apply(&view, env)
	if s := features.NewSnapshot(&view, "u", &st, &cfg, features.SnapshotSource{}); s.IsConsent() || len(s.Features) == 0 || s.Tokens == nil {
		t.Fatalf("view snapshot %+v", s)
	}
	no := false
	for _, tc := range []struct {
		name                 string
		consent              stream.Consent
		adsOff, profilingOff bool
	}{
		{"ads withdrawn", stream.Consent{Ads: &no}, true, false},
		{"profiling withdrawn", stream.Consent{Profiling: &no}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := stream.Event{Schema: 1, EventID: "c-" + tc.name, Type: stream.TypeConsent, UserID: "u", TS: t0.Add(time.Minute),
				Consent: &tc.consent, ItemID: "i", Category: "a.b", Price: &price}
			if st.Apply(&ev, env) != features.Applied {
				t.Fatal("consent not applied")
			}
			src := features.SnapshotSource{Topic: "clickstream", Offset: 3, Appended: t0}
			s := features.NewSnapshot(&ev, "u", &st, &cfg, src)
			want := features.Snapshot{Version: features.SnapshotVersion, ID: ev.EventID, User: "u", TS: ev.TS, Type: "consent",
				Features: map[string]float64{}, AdsOff: tc.adsOff, ProfilingOff: tc.profilingOff, Source: src}
			b, err := s.Encode()
			if err != nil {
				t.Fatal(err)
			}
			wb, _ := want.Encode()
			if string(b) != string(wb) {
				t.Fatalf("consent snapshot\n%s\nwant\n%s", b, wb)
			}
			back, err := features.DecodeSnapshot(b)
			if err != nil || !back.IsConsent() || back.AdsOff != tc.adsOff || back.ProfilingOff != tc.profilingOff {
				t.Fatalf("decoded %+v, %v", back, err)
			}
		})
	}
	bad := features.Snapshot{Version: features.SnapshotVersion, ID: "v2", User: "u", TS: t0, Type: "view", ProfilingOff: true}
	b, _ := bad.Encode()
	if _, err := features.DecodeSnapshot(b); err == nil {
		t.Fatal("a view snapshot with profiling_off decoded")
	}
}
