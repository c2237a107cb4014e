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
// network: DefaultNumericFeatures, token fields category, brand and term,
// heads HeadPurchase and HeadRepeat, and nn's defaults for the rest.
func DefaultArch() nn.Arch {
	return nn.Arch{
		NumericFeatures: DefaultNumericFeatures(),
		TokenFields:     []string{features.DimCategory, features.DimBrand, features.DimTerm},
		Heads:           []string{HeadPurchase, HeadRepeat},
	}.WithDefaults()
}

// Bucket returns the bucket of token in [0, buckets): murmur3-32 of its
// bytes modulo buckets. buckets must be positive.
func Bucket(token string, buckets int) uint32 {
	return murmur3.StringSum32(token) % uint32(buckets)
}

// Encoder builds nn.Examples for one architecture. It is immutable and safe
// for concurrent use.
type Encoder struct {
	arch    nn.Arch
	numeric []string
	hash    string
}

// New returns an encoder for arch (defaults applied). It returns an error
// wrapping nn.ErrInvalidArch when arch is invalid.
func New(arch nn.Arch) (*Encoder, error) {
	a := arch.WithDefaults()
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &Encoder{arch: a, numeric: a.NumericFeatures, hash: SchemaHash(a)}, nil
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
	for i, n := range e.numeric {
		v := s.Features[n]
		if v != v || v > maxAbs || v < -maxAbs { // NaN or absurd
			v = 0
		}
		ex.Numeric[i] = v
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
// input schema: the format version, the token hashing scheme, the numeric
// feature names, the token fields and the network's shape (hash buckets,
// embedding width, hidden layers, heads), with defaults applied. Training
// settings (learning rate, optimiser, batch size, seed) do not change it:
// models that differ only in them are interchangeable for a scorer.
func SchemaHash(arch nn.Arch) string {
	a := arch.WithDefaults()
	b, err := json.Marshal(schema{Version: 1, Hash: "murmur3-32", Numeric: a.NumericFeatures, Tokens: a.TokenFields,
		HashBuckets: a.HashBuckets, EmbedDim: a.EmbedDim, Hidden: a.Hidden, Heads: a.Heads})
	if err != nil { // an Arch always encodes
		return fmt.Sprintf("unencodable: %v", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
