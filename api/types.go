package api

import (
	"context"
	"time"
)

// Profiles reads profiles.
type Profiles interface {
	// Profile returns the profile that id belongs to. id is the path
	// segment as sent (unescaped, 1 to MaxIDLen bytes of UTF-8 without
	// control characters) and may be any id linked to the profile: its
	// user id, one of its anonymous ids, or their pseudonym. Unknown ids
	// give ErrNotFound.
	Profile(ctx context.Context, id string) (*Profile, error)
}

// Segments reads the segment catalogue and memberships.
type Segments interface {
	// List returns every segment of the catalogue.
	List(ctx context.Context) ([]SegmentInfo, error)
	// Members returns up to limit member ids of segment name, starting at
	// cursor ("" for the first page), and the cursor of the next page (""
	// on the last page). It must not return more than limit ids. A
	// cursor is opaque to the API and its clients; one the backend did
	// not issue gives ErrInvalidCursor, an unknown segment ErrNotFound.
	Members(ctx context.Context, name, cursor string, limit int) (ids []string, next string, err error)
}

// Erasures runs and reports erasure requests (right to be forgotten).
type Erasures interface {
	// Erase records an erasure request for the profile id belongs to (any
	// linked id, as for Profiles.Profile) and returns its receipt at once;
	// the erasure itself runs asynchronously. Repeating a request for a
	// profile already erased should return that erasure's receipt (pending
	// or completed) while it is kept.
	Erase(ctx context.Context, id string) (Receipt, error)
	// Status returns the current state of a receipt, or ErrNotFound.
	Status(ctx context.Context, receipt string) (Receipt, error)
}

// Backends are the stores the server reads and writes. All three are
// required.
type Backends struct {
	Profiles Profiles
	Segments Segments
	Erasures Erasures
}

// Profile is a user's profile: the body of GET /v1/profiles/{id}. Nil maps
// and slices are sent as {} and [].
type Profile struct {
	// ID is the profile's primary id: its user id, or for an anonymous
	// profile its anonymous id; when the store keeps only pseudonyms and
	// the raw id is unknown to the backend, the pseudonym.
	ID string `json:"id"`
	// Pseudonym is the key the profile is stored under when
	// pseudonymisation is on (privacy.Pseudonymizer format); omitted
	// otherwise.
	Pseudonym string `json:"pseudonym,omitempty"`
	// LinkedIDs are the other ids merged into this profile (anonymous ids
	// linked by identify events), in the same form as ID.
	LinkedIDs []string `json:"linked_ids"`
	// Features maps feature names (features.Defs) to their values.
	Features map[string]float64 `json:"features"`
	// Affinities maps each affinity dimension (category, brand, …) to its
	// strongest entries, strongest first.
	Affinities map[string][]Affinity `json:"affinities"`
	// Segments are the segments the profile is in, by name.
	Segments []SegmentMembership `json:"segments"`
	// Scores maps a prediction task (purchase_propensity, churn_risk, …)
	// to its latest score.
	Scores map[string]Score `json:"scores"`
	// Consent is the profile's effective consent.
	Consent Consent `json:"consent"`
	// EvaluatedAt is when features, segments and scores were evaluated.
	EvaluatedAt time.Time `json:"evaluated_at"`
}

// Affinity is one entry of an affinity list.
type Affinity struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// SegmentMembership is a segment a profile is in.
type SegmentMembership struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"` // when the profile entered it
}

// Score is a model's prediction for one task.
type Score struct {
	// Value is the prediction: a probability for classification tasks.
	Value float64 `json:"value"`
	// ModelVersion names the model version that produced Value.
	ModelVersion string `json:"model_version"`
	// Explanation lists the inputs that moved Value most, largest absolute
	// contribution first; omitted when the model gives none.
	Explanation []Contribution `json:"explanation,omitempty"`
}

// Contribution is the signed effect of one input on a score.
type Contribution struct {
	Feature      string  `json:"feature"`
	Contribution float64 `json:"contribution"`
}

// Consent is a profile's effective consent, after the deployment's default
// for users who never sent a consent event.
type Consent struct {
	Profiling bool `json:"profiling"`
	Ads       bool `json:"ads"`
	// UpdatedAt is the time of the last consent event; omitted when none
	// was received.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// SegmentInfo describes one segment of the catalogue.
type SegmentInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// MemberCount is the number of members when the backend tracks it
	// (possibly approximate); omitted otherwise.
	MemberCount *int64 `json:"member_count,omitempty"`
}

// SegmentList is the body of GET /v1/segments.
type SegmentList struct {
	Segments []SegmentInfo `json:"segments"`
}

// MemberPage is the body of GET /v1/segments/{name}/members.
type MemberPage struct {
	Segment string   `json:"segment"`
	Members []string `json:"members"`
	// NextCursor fetches the next page (?cursor=…); omitted on the last
	// page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// ErasureStatus is the state of an erasure request.
type ErasureStatus string

// The states of an erasure request, in order; completed and failed are
// final.
const (
	ErasureAccepted   ErasureStatus = "accepted"
	ErasureInProgress ErasureStatus = "in_progress"
	ErasureCompleted  ErasureStatus = "completed"
	ErasureFailed     ErasureStatus = "failed"
)

func (s ErasureStatus) valid() bool {
	switch s {
	case ErasureAccepted, ErasureInProgress, ErasureCompleted, ErasureFailed:
		return true
	}
	return false
}

// StepStatus is the state of one step of an erasure.
type StepStatus string

// The states of an erasure step.
const (
	StepPending    StepStatus = "pending"
	StepInProgress StepStatus = "in_progress"
	StepCompleted  StepStatus = "completed"
	StepFailed     StepStatus = "failed"
)

func (s StepStatus) valid() bool {
	switch s {
	case StepPending, StepInProgress, StepCompleted, StepFailed:
		return true
	}
	return false
}

// Receipt tracks an erasure request: the body of DELETE /v1/profiles/{id}
// and GET /v1/erasures/{receipt}.
type Receipt struct {
	// Receipt identifies the request: 1 to MaxReceiptLen characters of
	// [A-Za-z0-9._:-].
	Receipt string `json:"receipt"`
	// User is the erased profile's id in pseudonymised form only (never a
	// raw id: the receipt outlives the data it describes).
	User string `json:"user"`
	// Status is the overall state.
	Status ErasureStatus `json:"status"`
	// Steps are the stores and topics the erasure goes through (profile
	// store, identity links, segment memberships, …), in order.
	Steps []ErasureStep `json:"steps"`
	// RequestedAt is when the request was accepted.
	RequestedAt time.Time `json:"requested_at"`
	// CompletedAt is when the request reached completed or failed;
	// omitted before.
	CompletedAt time.Time `json:"completed_at,omitzero"`
}

// ErasureStep is one step of an erasure.
type ErasureStep struct {
	Name   string     `json:"name"`
	Status StepStatus `json:"status"`
	// At is when the step reached its status; omitted while pending.
	At time.Time `json:"at,omitzero"`
}

// Health is the body of GET /healthz.
type Health struct {
	Status string `json:"status"` // "ok"
}
