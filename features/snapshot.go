package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/streamprofile/streamprofile/stream"
)

// SnapshotVersion is the version of the Snapshot message format. Version 2
// added Recent; DecodeSnapshot still accepts version 1 snapshots (whose
// Recent is unknown, not empty).
const SnapshotVersion = 2

// SnapshotVersionNoRecent is the last snapshot version without Recent.
const SnapshotVersionNoRecent = 1

// Snapshot is a user's profile right after one event, as the ingester
// publishes it to the `profile-examples` topic (keyed by user). The trainer
// turns snapshots into training examples once their labels mature, and the
// scorer scores them and evaluates segments. It carries only what was known
// at the event's time: features evaluated at the event time, never later.
//
// A consent event's snapshot (Type "consent", IsConsent) is no profile: it
// carries the user's consent after the event (AdsOff, ProfilingOff) and
// nothing derived (no item fields, tokens or recent items, and an empty
// Features map), so that consumers learn of a withdrawal or a re-grant
// without waiting for the user's next behavioural event. The trainer
// skips it; the scorer applies the consent (see package sink/scorer).
// Identify events have no snapshot.
type Snapshot struct {
	Version int       `json:"v"`
	ID      string    `json:"id"` // the event id; replays repeat it
	User    string    `json:"user_id"`
	TS      time.Time `json:"ts"` // event time
	Type    string    `json:"type"`
	ItemID  string    `json:"item_id,omitempty"`
	// Category and Brand of the event's item.
	Category string `json:"category,omitempty"`
	Brand    string `json:"brand,omitempty"`
	// Price of the event's item; Amount is price × quantity for purchases.
	Price  float64 `json:"price,omitempty"`
	Amount float64 `json:"amount,omitempty"`
	// Features are the numeric features by name (see Defs); empty on a
	// consent snapshot.
	Features map[string]float64 `json:"features"`
	// Tokens are the top affinity names by dimension (see Dims).
	Tokens map[string][]string `json:"tokens,omitempty"`
	// Recent, on a view, lists the items the user viewed before it, oldest
	// first: at most RecentViews distinct items other than the event's own,
	// ranked by the event time of their latest view (State.Recent,
	// State.AppendRecentBefore). It is a function of the user's events
	// alone, so a replay repeats it. Empty on other events, and on views
	// of version 1 snapshots, which did not carry it.
	Recent []string `json:"recent_items,omitempty"`
	// AdsOff is true when the user's last consent withdrew ads.
	AdsOff bool `json:"ads_off,omitempty"`
	// ProfilingOff is true when the user's last consent withdrew
	// profiling. Only a consent snapshot can carry it: no behavioural
	// event of such a user is applied, so none has a snapshot.
	ProfilingOff bool `json:"profiling_off,omitempty"`
	// Source locates the clickstream record: its topic, partition, offset
	// and Kafka append time (for ingest → emit latency).
	Source SnapshotSource `json:"source"`
}

// SnapshotSource locates the event a snapshot was made from.
type SnapshotSource struct {
	Topic     string    `json:"topic"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Appended  time.Time `json:"appended"`
}

// NewSnapshot builds the snapshot of st right after ev was applied. The
// pipeline writes the same bytes with SnapshotEncoder, without building it.
func NewSnapshot(ev *stream.Event, user string, st *State, cfg *Config, src SnapshotSource) Snapshot {
	s := snapshotHead(ev, user, st, src)
	if ev.Type == stream.TypeConsent {
		s.Features = map[string]float64{}
		return s
	}
	var v Vector
	st.evaluate(ev.TS.UnixMilli(), cfg, &v)
	s.Features = v.Map()
	if ev.Type == stream.TypeView && ev.ItemID != "" {
		s.Recent = st.AppendRecentBefore(nil, ev.ItemID)
	}
	var scratch [maxInsertionTopK]int32
	for i, d := range Dims {
		top := st.Aff[i].topIndexes(scratch[:0], cfg.TopK)
		if len(top) == 0 {
			continue
		}
		if s.Tokens == nil {
			s.Tokens = make(map[string][]string, len(Dims))
		}
		names := make([]string, len(top))
		for j, x := range top {
			names[j] = st.Aff[i].Entries[x].Name
		}
		s.Tokens[d] = names
	}
	return s
}

// snapshotHead is the snapshot of st right after ev without the fields
// computed from st's affinities, features and recent views: Features,
// Tokens and Recent. A consent snapshot has no item fields either.
func snapshotHead(ev *stream.Event, user string, st *State, src SnapshotSource) Snapshot {
	s := Snapshot{
		Version: SnapshotVersion, ID: ev.EventID, User: user, TS: ev.TS, Type: string(ev.Type),
		AdsOff: st.AdsOff, ProfilingOff: st.ProfilingOff, Source: src,
	}
	if ev.Type == stream.TypeConsent {
		return s
	}
	s.ItemID, s.Category, s.Brand = ev.ItemID, ev.Category, ev.Brand
	if ev.Price != nil {
		s.Price = *ev.Price
	}
	if ev.Type == stream.TypePurchase {
		s.Amount = float64(ev.AmountMicros()) / 1e6
	}
	return s
}

// IsConsent reports whether s is a consent event's snapshot (see
// Snapshot): it carries consent flags, not a profile.
func (s *Snapshot) IsConsent() bool { return s.Type == string(stream.TypeConsent) }

// Vector returns the numeric features in Vector order; names missing from
// the snapshot are 0.
func (s *Snapshot) Vector() Vector {
	var v Vector
	for i, d := range Defs {
		v[i] = s.Features[d.Name]
	}
	return v
}

// ErrBadSnapshot is wrapped by DecodeSnapshot errors.
var ErrBadSnapshot = errors.New("features: bad snapshot")

// DecodeSnapshot parses and checks a snapshot message value.
func DecodeSnapshot(b []byte) (Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return Snapshot{}, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	switch {
	case s.Version != SnapshotVersion && s.Version != SnapshotVersionNoRecent:
		return Snapshot{}, fmt.Errorf("%w: version %d", ErrBadSnapshot, s.Version)
	case len(s.Recent) > RecentViews:
		return Snapshot{}, fmt.Errorf("%w: %d recent items (at most %d)", ErrBadSnapshot, len(s.Recent), RecentViews)
	case s.ID == "" || s.User == "":
		return Snapshot{}, fmt.Errorf("%w: missing id or user_id", ErrBadSnapshot)
	case s.TS.IsZero():
		return Snapshot{}, fmt.Errorf("%w: missing ts", ErrBadSnapshot)
	case !stream.EventType(s.Type).Valid():
		return Snapshot{}, fmt.Errorf("%w: type %q", ErrBadSnapshot, s.Type)
	case s.ProfilingOff && !s.IsConsent():
		// Behavioural events of such a user are never applied: a
		// profile made after a withdrawal must not be used.
		return Snapshot{}, fmt.Errorf("%w: profiling_off on a %s snapshot", ErrBadSnapshot, s.Type)
	}
	for k, v := range s.Features {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Snapshot{}, fmt.Errorf("%w: feature %s is %v", ErrBadSnapshot, k, v)
		}
	}
	return s, nil
}

// Encode renders the snapshot as its message value: what json.Marshal(s)
// returns, byte for byte, written without reflection (snapshot_json.go).
func (s *Snapshot) Encode() ([]byte, error) { return s.appendJSON(make([]byte, 0, 1536)) }
