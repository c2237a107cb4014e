package scorer

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"time"

	"github.com/streamprofile/streamprofile/sink/segment"
)

// Message versions: the schemas schema/segment-changes-v1.schema.json and
// schema/retarget-v1.schema.json describe them.
const (
	ChangeVersion  = 1
	TriggerVersion = 1
)

// Causes of a change or trigger.
const (
	CauseEvent     = "event"     // a snapshot of the user's event
	CauseTimer     = "timer"     // a timer: time passed without an event
	CauseRetention = "retention" // the user's retention ended
	CausePrice     = "price"     // another user's event showed a lower price
	// CauseConsent: the user withdrew profiling consent (a consent
	// snapshot with profiling_off) and leaves every segment.
	CauseConsent = "consent"
)

// HeaderSourceEvent is the record header of a change or trigger caused by
// an event (cause "event", or "price" for a price drop another user's event
// showed, or "consent" for the exits of a profiling withdrawal): the id of
// that event (its snapshot's id). Changes and triggers from timers and
// retention carry none. It lets consumers and benchmarks
// match an output to the event behind it without decoding the value.
const HeaderSourceEvent = "sp-source-event"

// SegmentChange is a message of topic segment-changes, keyed by user.
type SegmentChange struct {
	Version int `json:"v"`
	// EventID is deterministic (user, segment, change, at): a change
	// repeated after a crash has the same id, so consumers drop repeats.
	EventID string `json:"event_id"`
	UserID  string `json:"user_id"`
	Segment string `json:"segment"`
	// Change is "enter" or "exit".
	Change string `json:"change"`
	// At is the event time the change happened at: the event's time, or a
	// timer's due time.
	At     time.Time    `json:"at"`
	Reason ChangeReason `json:"reason"`
	// ModelVersion is the champion version whose scores were used (0: no
	// model).
	ModelVersion int64 `json:"model_version"`
	// Cause is "event", "timer", "retention" or "consent".
	Cause string `json:"cause"`
	// SnapshotID is the id of the event behind a change caused by an
	// event or a consent withdrawal.
	SnapshotID string `json:"snapshot_id,omitempty"`
}

// ChangeReason says why a change happened.
type ChangeReason struct {
	// Rule is the text of the rule that decided ("" when the segment left
	// the catalogue, the user's retention ended or the user withdrew
	// profiling consent).
	Rule string `json:"rule"`
	// Field is "rule" or "exit_rule" ("" with an empty Rule).
	Field string `json:"field,omitempty"`
	// Values maps every name the rule references to its value: a number,
	// a string (top_<dim>), a list of strings (<dim>_top), or null when
	// missing.
	Values map[string]any `json:"values"`
	// Note adds what else decided (a min_dwell, a removed segment,
	// retention, a consent withdrawal).
	Note string `json:"note,omitempty"`
}

// Trigger is a message of topic retarget, keyed by user.
type Trigger struct {
	Version int `json:"v"`
	// TriggerID is deterministic (dedupe key and time): a trigger repeated
	// after a crash has the same id.
	TriggerID string `json:"trigger_id"`
	UserID    string `json:"user_id"`
	// Kind is cart_abandonment, browse_abandonment, price_drop or
	// win_back.
	Kind string `json:"kind"`
	// Priority is "high", "normal" or "low".
	Priority string `json:"priority"`
	// At is the event time the trigger fired at; ExpiresAt is when acting
	// on it stops making sense.
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
	// DedupeKey names the occasion (the abandoned cart, the browse, the
	// price, the inactivity period): one occasion triggers at most once.
	DedupeKey string   `json:"dedupe_key"`
	Channels  []string `json:"channels"`
	// ModelVersion is the champion version behind Score (0: no model).
	ModelVersion int64        `json:"model_version"`
	Score        TriggerScore `json:"score"`
	// Items are recommended items (never one the user bought), best
	// first; Categories the user's top categories and the items'.
	Items      []Recommendation `json:"recommended_items"`
	Categories []string         `json:"recommended_categories"`
	// Explanation lists the top contributions to Score.
	Explanation []Contribution `json:"explanation"`
	Context     TriggerContext `json:"context"`
	// Cause is "event", "timer" or "price".
	Cause string `json:"cause"`
}

// TriggerScore is the score that motivated a trigger.
type TriggerScore struct {
	Name string `json:"name"`
	// Value is null when the score is unknown (no model yet).
	Value *float64 `json:"value"`
}

// TriggerContext carries kind-specific details.
type TriggerContext struct {
	// Items are the items the occasion is about: the abandoned cart, the
	// browsed items, the cheaper item.
	Items []string `json:"items,omitempty"`
	// OldPrice is the price the user saw, NewPrice the lower price
	// observed since (price_drop).
	OldPrice float64 `json:"old_price,omitempty"`
	NewPrice float64 `json:"new_price,omitempty"`
	// Since is when the occasion began (the cart, the browse, the last
	// activity).
	Since *time.Time `json:"since,omitempty"`
}

// Contribution is one input's signed effect on a score: the score minus
// the score with the input absent (a numeric feature at 0, a token field
// empty).
type Contribution struct {
	// Feature is the feature name or token field.
	Feature string `json:"feature"`
	// Label is its readable name.
	Label string `json:"label"`
	// Contribution is positive when the input raises the score.
	Contribution float64 `json:"contribution"`
}

// digest returns 32 hex digits of the SHA-256 of the parts.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// ChangeID is the event_id of a segment change.
func ChangeID(user, seg, change string, at time.Time) string {
	return digest("segment-change/v1", user, seg, change, strconv.FormatInt(at.UnixMilli(), 10))
}

// TriggerID is the trigger_id of a trigger.
func TriggerID(dedupeKey string, at time.Time) string {
	return digest("retarget/v1", dedupeKey, strconv.FormatInt(at.UnixMilli(), 10))
}

// reasonOf converts a segment.Reason.
func reasonOf(r segment.Reason) ChangeReason {
	out := ChangeReason{Rule: r.Rule, Field: r.Field, Note: r.Note, Values: make(map[string]any, len(r.Values))}
	for _, v := range r.Values {
		switch {
		case v.Missing:
			out.Values[v.Name] = nil
		case v.Kind == segment.StringValue:
			out.Values[v.Name] = v.Str
		case v.Kind == segment.ListValue:
			l := v.List
			if l == nil {
				l = []string{}
			}
			out.Values[v.Name] = l
		case math.IsNaN(v.Num) || math.IsInf(v.Num, 0):
			out.Values[v.Name] = nil
		default:
			out.Values[v.Name] = v.Num
		}
	}
	return out
}

func ptr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}
