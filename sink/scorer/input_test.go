package scorer

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// Projecting a user's last snapshot forward in time gives what the
// feature store computes at that time, for every feature that moves
// without events: exactly for clocks, decays, RFM recency and windows
// whose span has passed; windows still open are held (never below the
// truth); totals do not move. Checked on every user of the REES46 sample.
func TestProjectMatchesFeatureStore(t *testing.T) {
	s := sampleData(t)
	cfg := features.Config{}.WithDefaults()
	last := map[string]*features.Snapshot{}
	for i := range s.snaps {
		last[s.snaps[i].User] = &s.snaps[i]
	}
	exact := []features.ID{features.DaysSinceLastSeen, features.TenureDays, features.DaysSinceLastPurchase,
		features.Activity1h, features.Activity1d, features.Activity7d, features.RFMRecency, features.RFMScore, features.AgeWeeks}
	held := map[features.ID]bool{}
	for _, w := range windows {
		held[w.id] = true
	}
	deltas := []time.Duration{0, 10 * time.Minute, 2 * time.Hour, 25 * time.Hour, 8 * 24 * time.Hour, 40 * 24 * time.Hour, 100 * 24 * time.Hour}
	checked := 0
	for u, sn := range last {
		st := s.states[u]
		if st.Evaluate(sn.TS, &cfg).Vector[features.LastSeen] != sn.Features["last_seen"] {
			continue // the snapshot of a late event: not the user's latest time
		}
		v := sn.Vector()
		for _, d := range deltas {
			to := sn.TS.Add(d)
			got := project(v, sn.TS.UnixMilli(), to.UnixMilli())
			want := st.Evaluate(to, &cfg).Vector
			for _, id := range exact {
				if math.Abs(got[id]-want[id]) > 1e-9*math.Max(1, math.Abs(want[id])) {
					t.Fatalf("user %s +%v: %s projected %v, store %v", u, d, id.Name(), got[id], want[id])
				}
			}
			for _, w := range windows {
				if d >= time.Duration(w.span)*time.Millisecond && got[w.id] != want[w.id] {
					t.Fatalf("user %s +%v: window %s projected %v, store %v", u, d, w.id.Name(), got[w.id], want[w.id])
				}
				if got[w.id] < want[w.id] {
					t.Fatalf("user %s +%v: window %s projected %v below the store's %v", u, d, w.id.Name(), got[w.id], want[w.id])
				}
			}
			for id := range got {
				fid := features.ID(id)
				moves := held[fid]
				for _, e := range exact {
					moves = moves || e == fid
				}
				if !moves && got[id] != v[id] {
					t.Fatalf("user %s +%v: %s changed without events", u, d, fid.Name())
				}
			}
			checked++
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d projections checked", checked)
	}
}

// The input reads features, scores (NaN missing), affinities and deciles.
func TestInput(t *testing.T) {
	var v features.Vector
	v[features.ViewsTotal] = 3
	var tokens [len(features.Dims)][]string
	tokens[2] = []string{"apple", "samsung"}
	sc := scores{0.5, math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	sk, err := segment.NewSketches(segment.SketchConfig{MinCount: 10}, segment.ScoreNames()...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		sk.Add(segment.ScorePurchasePropensity, float64(i)/100)
	}
	in := input{vec: &v, tokens: &tokens, sc: &sc, deciles: sk}
	if x, ok := in.Value("views_total"); !ok || x != 3 {
		t.Errorf("views_total = %v %v", x, ok)
	}
	if x, ok := in.Value("purchase_propensity"); !ok || x != 0.5 {
		t.Errorf("purchase_propensity = %v %v", x, ok)
	}
	if _, ok := in.Value("churn_risk"); ok {
		t.Error("a NaN score is present")
	}
	if _, ok := in.Value("nope"); ok {
		t.Error("an unknown name is present")
	}
	if got := in.Top("brand"); len(got) != 2 || got[0] != "apple" {
		t.Errorf("Top(brand) = %v", got)
	}
	// 0.5 is the 51st of the values 0, 0.01, …, 0.99: sixth decile.
	if d, ok := in.Decile("purchase_propensity"); !ok || d != 6 {
		t.Errorf("decile = %d %v, want 6", d, ok)
	}
	if _, ok := in.Decile("churn_risk"); ok {
		t.Error("decile of a missing score")
	}
}

// A late event's snapshot (evaluated at its own time, but counting the
// user's later events) brought to the user's latest time agrees with the
// feature store there on every exactly projected feature. Random users
// whose events arrive out of order within ten minutes.
func TestProjectLateSnapshots(t *testing.T) {
	cfg := features.Config{}.WithDefaults()
	exact := []features.ID{features.DaysSinceLastSeen, features.TenureDays, features.DaysSinceLastPurchase,
		features.Activity1h, features.Activity1d, features.Activity7d, features.RFMRecency, features.RFMScore, features.AgeWeeks,
		features.ViewsTotal, features.CartsTotal, features.PurchasesTotal, features.RevenueTotal}
	r := rand.New(rand.NewPCG(9, 9))
	types := []stream.EventType{stream.TypeView, stream.TypeView, stream.TypeCart, stream.TypePurchase}
	late := 0
	for u := 0; u < 50; u++ {
		var evs []stream.Event
		for i := 0; i < 30; i++ {
			price := 1 + r.Float64()*100
			ev := stream.Event{Schema: 1, EventID: strconv.Itoa(i), Type: types[r.IntN(len(types))], UserID: "u",
				TS: t0.Add(time.Duration(i)*3*time.Minute + time.Duration(r.IntN(600))*time.Second), ItemID: "i" + strconv.Itoa(r.IntN(9)),
				Price: &price, PriceMicros: int64(math.Round(price * 1e6))}
			evs = append(evs, ev)
		}
		var st features.State
		var latest int64
		for i := range evs {
			ev := evs[i]
			st.Apply(&ev, features.Env{Cfg: &cfg})
			ts := ev.TS.UnixMilli()
			if ts >= latest {
				latest = ts
				continue
			}
			late++
			sn := features.NewSnapshot(&ev, "u", &st, &cfg, features.SnapshotSource{})
			got := project(sn.Vector(), ts, latest)
			want := st.Evaluate(time.UnixMilli(latest), &cfg).Vector
			for _, id := range exact {
				if math.Abs(got[id]-want[id]) > 1e-9*math.Max(1, math.Abs(want[id])) {
					t.Fatalf("user %d, late event %d: %s projected %v, store %v", u, i, id.Name(), got[id], want[id])
				}
			}
		}
	}
	if late < 100 {
		t.Fatalf("only %d late events", late)
	}
}
