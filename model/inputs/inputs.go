package inputs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/twmb/murmur3"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/nn"
)

// Heads of the streamprofile network, in Arch.Heads order.
const (
	// HeadPurchase is P(purchase within the propensity horizon).
	HeadPurchase = "purchase_propensity"
	// HeadRepeat is P(a repeat purchase on a later day within the repeat
	// horizon); churn risk is its complement.
	HeadRepeat = "repeat_purchase_90d"
)

// excluded are the raw timestamps left out of DefaultNumericFeatures.
var excluded = map[string]bool{
	features.Defs[features.FirstSeen].Name:      true,
	features.Defs[features.LastSeen].Name:       true,
	features.Defs[features.LastPurchaseAt].Name: true,
}

// DefaultNumericFeatures returns the names of every numeric feature of
// features.Defs except first_seen, last_seen and last_purchase_at, in Defs
// order. The slice is new on each call.
func DefaultNumericFeatures() []string {
	out := make([]string, 0, len(features.Defs))
	for _, d := range features.Defs {
		if !excluded[d.Name] {
			out = append(out, d.Name)
		}
	}
	return out
}

// DefaultArch returns the default architecture of the streamprofile
// network: numeric inputs DefaultNumericFeatures followed by the derived
// BG/NBD inputs (DerivedInputs), token fields category, brand and term,
// heads HeadPurchase and HeadRepeat, and nn's defaults for the rest.
func DefaultArch() nn.Arch {
	return nn.Arch{
		NumericFeatures: append(DefaultNumericFeatures(), derivedNames[:]...),
		TokenFields:     []string{features.DimCategory, features.DimBrand, features.DimTerm},
		Heads:           []string{HeadPurchase, HeadRepeat},
	}.WithDefaults()
}

// Bucket returns the bucket of token in [0, buckets): murmur3-32 of its
// bytes modulo buckets. buckets must be positive.
func Bucket(token string, buckets int) uint32 {
	return murmur3.StringSum32(token) % uint32(buckets)
}

// Encoder builds nn.Examples for one architecture and, when the
// architecture has derived inputs, one BG/NBD fit (WithFit). It is
// immutable and safe for concurrent use.
type Encoder struct {
	arch    nn.Arch
	numeric []string
	derived []int // per numeric input: its derived kind, or notDerived
	slots   []int // indices of the derived numeric inputs
	hash    string
	fit     *Fit // nil: no fit yet
}

// New returns an encoder for arch (defaults applied) without a BG/NBD fit:
// its derived inputs read as when no fit exists (see Fit). It returns an
// error wrapping nn.ErrInvalidArch when arch is invalid.
func New(arch nn.Arch) (*Encoder, error) {
	a := arch.WithDefaults()
	if err := a.Validate(); err != nil {
		return nil, err
	}
	e := &Encoder{arch: a, numeric: a.NumericFeatures, derived: make([]int, len(a.NumericFeatures)), hash: SchemaHash(a)}
	for i, n := range a.NumericFeatures {
		e.derived[i] = derivedKind(n)
		if e.derived[i] != notDerived {
			e.slots = append(e.slots, i)
		}
	}
	return e, nil
}

// WithFit returns an encoder like e whose derived inputs are computed with
// fit (copied; nil or invalid: no fit). The trainer binds the fit it has
// when a snapshot arrives, a served model version the fit stored with it
// (registry.Version.CLV), so that a version is scored with the inputs it
// was cut with.
func (e *Encoder) WithFit(fit *Fit) *Encoder {
	out := *e
	out.fit = nil
	if fit != nil && fit.BGNBD.Validate() == nil {
		f := Fit{BGNBD: fit.BGNBD}
		if fit.GammaGamma != nil && fit.GammaGamma.Validate() == nil {
			gg := *fit.GammaGamma
			f.GammaGamma = &gg
		}
		out.fit = &f
	}
	return &out
}

// Fit returns a copy of the encoder's BG/NBD fit (nil: none).
func (e *Encoder) Fit() *Fit {
	if e.fit == nil {
		return nil
	}
	f := *e.fit
	if f.GammaGamma != nil {
		gg := *f.GammaGamma
		f.GammaGamma = &gg
	}
	return &f
}

// SameInputs reports whether e and o encode every snapshot identically:
// the same schema hash and, when the architecture has derived inputs, the
// same fit.
func (e *Encoder) SameInputs(o *Encoder) bool {
	if e == o {
		return true
	}
	if e == nil || o == nil || e.hash != o.hash {
		return false
	}
	if len(e.slots) == 0 {
		return true
	}
	return e.fit.equal(o.fit)
}

// Arch returns the encoder's architecture, defaults applied.
func (e *Encoder) Arch() nn.Arch { return e.arch.WithDefaults() }

// SchemaHash returns SchemaHash(e.Arch()).
func (e *Encoder) SchemaHash() string { return e.hash }

// Encode returns the input row of s: numeric features in
// Arch.NumericFeatures order (0 when absent or not finite) and hashed token
// bags. Labels and Mask are nil.
func (e *Encoder) Encode(s *features.Snapshot) nn.Example {
	ex := nn.Example{Numeric: make([]float64, len(e.numeric))}
	e.fill(&ex, s)
	return ex
}

// EncodeInto is Encode reusing dst's Numeric slice and Tokens map when
// they are large enough; it returns the filled example.
func (e *Encoder) EncodeInto(dst nn.Example, s *features.Snapshot) nn.Example {
	if cap(dst.Numeric) >= len(e.numeric) {
		dst.Numeric = dst.Numeric[:len(e.numeric)]
	} else {
		dst.Numeric = make([]float64, len(e.numeric))
	}
	for k, v := range dst.Tokens {
		dst.Tokens[k] = v[:0]
	}
	e.fill(&dst, s)
	return dst
}

func (e *Encoder) fill(ex *nn.Example, s *features.Snapshot) {
	var d derivedValues
	if len(e.slots) > 0 {
		sum := SummaryOf(s)
		d = e.fit.values(&sum)
	}
	for i, n := range e.numeric {
		var v float64
		if k := e.derived[i]; k != notDerived {
			v = d[k]
		} else {
			v = s.Features[n]
		}
		ex.Numeric[i] = clean(v)
	}
	buckets := e.arch.HashBuckets
	for _, f := range e.arch.TokenFields {
		toks := s.Tokens[f]
		if len(toks) == 0 {
			if ex.Tokens != nil {
				delete(ex.Tokens, f)
			}
			continue
		}
		if ex.Tokens == nil {
			ex.Tokens = make(map[string][]uint32, len(e.arch.TokenFields))
		}
		ids := ex.Tokens[f][:0]
		for _, t := range toks {
			ids = append(ids, Bucket(t, buckets))
		}
		ex.Tokens[f] = ids
	}
}

// maxAbs bounds numeric inputs: larger magnitudes (and ±Inf) read as 0.
const maxAbs = 1e300

// clean returns the input value of v: 0 for NaN and magnitudes above
// maxAbs.
func clean(v float64) float64 {
	if v != v || v > maxAbs || v < -maxAbs {
		return 0
	}
	return v
}

// DerivedSlots returns the indices in Arch.NumericFeatures of the derived
// inputs, in that order (empty when the architecture has none). The slice
// is new on each call.
func (e *Encoder) DerivedSlots() []int { return append([]int(nil), e.slots...) }

// DerivedWithout returns, for a snapshot whose summary (SummaryOf) is sum,
// the values Encode writes into the derived inputs' slots (DerivedSlots
// order) when the snapshot's summary feature k (an index in
// SummaryFeatures) is absent; k out of range removes nothing. It reuses
// dst when it is large enough. It costs at most one BG/NBD and Gamma-Gamma
// evaluation (none when the result is the all-zero "not a customer"). With
// it an explanation can occlude a summary feature the way removing it from
// the snapshot does: its own input and the derived inputs computed from it.
func (e *Encoder) DerivedWithout(dst []float64, sum Summary, k int) []float64 {
	if k >= 0 && k < numSummary {
		sum[k] = 0
	}
	d := e.fit.values(&sum)
	dst = dst[:0]
	for _, i := range e.slots {
		dst = append(dst, clean(d[e.derived[i]]))
	}
	return dst
}

// schemaVersion is the format version SchemaHash fingerprints. Version 2
// added the derived BG/NBD inputs (DerivedInputs): a version-1 model's
// numeric names were all snapshot features, so no model of another format
// is scored with this one's encoder.
const schemaVersion = 2

// schema is what SchemaHash fingerprints.
type schema struct {
	Version     int      `json:"v"`
	Hash        string   `json:"hash"`
	Numeric     []string `json:"numeric"`
	Tokens      []string `json:"tokens"`
	HashBuckets int      `json:"hash_buckets"`
	EmbedDim    int      `json:"embed_dim"`
	Hidden      []int    `json:"hidden"`
	Heads       []string `json:"heads"`
}

// SchemaHash returns the first 128 bits of the SHA-256, in hex, of the
// input schema: the format version (2), the token hashing scheme, the
// numeric input names (snapshot features and derived inputs), the token
// fields and the network's shape (hash buckets, embedding width, hidden
// layers, heads), with defaults applied. Training settings (learning rate,
// optimiser, batch size, seed) do not change it: models that differ only in
// them are interchangeable for a scorer. The BG/NBD fit a version's derived
// inputs are computed with is not part of it: it travels with the version
// (registry.Version.CLV).
func SchemaHash(arch nn.Arch) string {
	a := arch.WithDefaults()
	b, err := json.Marshal(schema{Version: schemaVersion, Hash: "murmur3-32", Numeric: a.NumericFeatures, Tokens: a.TokenFields,
		HashBuckets: a.HashBuckets, EmbedDim: a.EmbedDim, Hidden: a.Hidden, Heads: a.Heads})
	if err != nil { // an Arch always encodes
		return fmt.Sprintf("unencodable: %v", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
