package registry

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/streamprofile/streamprofile/model/clv"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
)

// Status is a version's place in its life cycle.
type Status string

// Version statuses.
const (
	// StatusCandidate: cut by the trainer, not (yet) served.
	StatusCandidate Status = "candidate"
	// StatusChampion: the version scorers serve. At most one at a time.
	StatusChampion Status = "champion"
	// StatusRetired: superseded, rejected by the gate, or never evaluated.
	StatusRetired Status = "retired"
	// StatusRolledBack: was champion and was rolled back; never chosen as
	// a rollback target again.
	StatusRolledBack Status = "rolled_back"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusCandidate, StatusChampion, StatusRetired, StatusRolledBack:
		return true
	}
	return false
}

// Float is a float64 whose JSON form is null for NaN (an undefined metric,
// such as the AUC of a window with one class) and ±1e308 for ±Inf.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte("null"), nil
	case math.IsInf(v, 1):
		v = math.MaxFloat64
	case math.IsInf(v, -1):
		v = -math.MaxFloat64
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("%w: metric %q", ErrCorrupt, b)
	}
	*f = Float(v)
	return nil
}

// Metrics are prequential metrics of one model on one task: every example
// was scored before its label was known and before it was learnt from.
type Metrics struct {
	// AUC over the window (null when it holds one class only).
	AUC Float `json:"auc"`
	// LogLoss in nats over the window.
	LogLoss Float `json:"logloss"`
	// ECE with 10 equal-width bins over the window.
	ECE Float `json:"ece"`
	// Examples is the number of (score, label) pairs in the window.
	Examples int64 `json:"examples"`
	// Positives among them.
	Positives int64 `json:"positives"`
}

// Note is a timestamped remark on a version (promotion reasons, gate
// decisions, rollbacks).
type Note struct {
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// Version is one model version: everything but its weights (which are
// stored beside it) and the trainer state.
type Version struct {
	// Number is the version number, 1, 2, ... in creation order.
	Number int64 `json:"version"`
	// Parent is the version it was fine-tuned from (0: trained from
	// scratch).
	Parent int64 `json:"parent"`
	// CreatedAt is the wall-clock time the version was cut.
	CreatedAt time.Time `json:"created_at"`
	// Status is the version's life-cycle status.
	Status Status `json:"status"`
	// SchemaHash fingerprints the model's inputs (inputs.SchemaHash).
	SchemaHash string `json:"schema_hash"`
	// Arch is the model's architecture.
	Arch nn.Arch `json:"arch"`
	// Topic is the trainer's input topic.
	Topic string `json:"topic,omitempty"`
	// Offsets maps each input partition to the next offset the trainer
	// had consumed when the version was cut.
	Offsets map[int]int64 `json:"offsets,omitempty"`
	// Examples is the number of examples learnt by the weights' lineage.
	Examples int64 `json:"examples"`
	// Metrics maps task → model name ("network", "champion", "recency",
	// "logistic", "bgnbd", or "version" for this version's own gate
	// window) → prequential metrics at the time of writing.
	Metrics map[string]map[string]Metrics `json:"metrics,omitempty"`
	// Notes are remarks in time order.
	Notes []Note `json:"notes,omitempty"`
	// ModelBytes is the size of the encoded weights.
	ModelBytes int `json:"model_bytes"`
	// CLV holds the BG/NBD and Gamma-Gamma parameters the trainer had
	// fitted when the version was cut, for scorers that report p_alive,
	// expected purchases and CLV beside the network's scores, and for the
	// network's derived inputs (inputs.DerivedInputs): a version is
	// scored with this fit. Nil until a fit succeeded.
	CLV *CLVParams `json:"clv,omitempty"`
}

// CLVParams are fitted customer-base parameters, in weeks.
type CLVParams struct {
	// BGNBD parameters (Alpha per week).
	BGNBD clv.BGNBD `json:"bgnbd"`
	// GammaGamma parameters; nil when too few repeat customers to fit.
	GammaGamma *clv.GammaGamma `json:"gamma_gamma,omitempty"`
	// Customers is the number of summaries fitted on.
	Customers int `json:"customers"`
	// AsOf is the event time the summaries were aged to.
	AsOf time.Time `json:"as_of"`
}

// Fit returns the parameters as the input encoder's fit (nil for a nil p).
func (p *CLVParams) Fit() *inputs.Fit {
	if p == nil {
		return nil
	}
	return &inputs.Fit{BGNBD: p.BGNBD, GammaGamma: p.GammaGamma}
}

// Meta is the registry-wide record: the champion and the promotion
// history.
type Meta struct {
	// Latest is the highest version number created (0: none).
	Latest int64 `json:"latest"`
	// Champion is the serving version (0: none).
	Champion int64 `json:"champion"`
	// History lists the versions made champion, in order; the last entry
	// is the champion. Rollbacks append the version restored.
	History []int64 `json:"history,omitempty"`
	// Revision counts changes to the registry.
	Revision int64 `json:"revision"`
	// StatesPrunedBelow: the trainer states of the versions numbered
	// below it have been through Registry.PruneStates (0: none).
	StatesPrunedBelow int64 `json:"states_pruned_below,omitempty"`
}

func decodeVersion(b []byte) (Version, error) {
	var v Version
	if err := json.Unmarshal(b, &v); err != nil {
		return Version{}, fmt.Errorf("%w: version: %v", ErrCorrupt, err)
	}
	if v.Number < 1 || !v.Status.Valid() {
		return Version{}, fmt.Errorf("%w: version %d status %q", ErrCorrupt, v.Number, v.Status)
	}
	return v, nil
}

func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("%w: meta: %v", ErrCorrupt, err)
	}
	return m, nil
}

// DecodeVersion parses a version's JSON (the registry's stored form and the
// value of a model-versions message).
func DecodeVersion(b []byte) (Version, error) { return decodeVersion(b) }

// Encode returns the version's JSON.
func (v *Version) Encode() ([]byte, error) { return json.Marshal(v) }
