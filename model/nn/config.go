package nn

import (
	"fmt"
	"math"
)

// Defaults applied by Arch for zero-valued fields.
const (
	DefaultHashBuckets  = 1024
	DefaultEmbedDim     = 8
	DefaultLearningRate = 0.01
	DefaultOptimizer    = "adam"
	DefaultL2           = 1e-5
	DefaultBatchSize    = 128
	DefaultSeed         = 1
)

// Limits enforced by Arch.Validate. They bound the memory a decoded model may
// claim, so that a corrupt or hostile snapshot cannot trigger a huge
// allocation.
const (
	MaxNumericFeatures = 4096
	MaxTokenFields     = 64
	MaxHashBuckets     = 1 << 22
	MaxEmbedDim        = 512
	MaxHiddenLayers    = 8
	MaxHiddenWidth     = 4096
	MaxHeads           = 64
	MaxBatchSize       = 1 << 16
	MaxNameLen         = 128
	// MaxParams is the largest total number of weights (embeddings, dense
	// layers and biases) a network may have: 2^26 float64s, 512 MiB.
	MaxParams = 1 << 26
)

// Optimizer names accepted in Arch.Optimizer.
const (
	OptimizerAdam = "adam"
	OptimizerSGD  = "sgd"
)

// Arch declares the network: its inputs, its shape, its heads and how it is
// trained. A zero field takes the default stated in its documentation; call
// Validate (NewNetwork does) to check the effective values.
type Arch struct {
	// NumericFeatures names the numeric inputs, in the order of
	// Example.Numeric. May be empty. No default.
	NumericFeatures []string `yaml:"numeric_features" json:"numeric_features"`
	// TokenFields names the hashed-token inputs (the keys of
	// Example.Tokens). Default ["category", "brand", "term"].
	TokenFields []string `yaml:"token_fields" json:"token_fields"`
	// HashBuckets is the number of embedding rows per token field; bucket ids
	// must be in [0, HashBuckets). Default 1024.
	HashBuckets int `yaml:"hash_buckets" json:"hash_buckets"`
	// EmbedDim is the width of each token field's embedding. Default 8.
	EmbedDim int `yaml:"embed_dim" json:"embed_dim"`
	// Hidden lists the widths of the shared ReLU layers. Default [32, 16].
	Hidden []int `yaml:"hidden" json:"hidden"`
	// Heads names the sigmoid outputs, in the order of Example.Labels,
	// Example.Mask and of Predict's result. Default
	// ["purchase_propensity", "repeat_purchase"].
	Heads []string `yaml:"heads" json:"heads"`
	// LearningRate is the solver step size. Default 0.01.
	LearningRate float64 `yaml:"learning_rate" json:"learning_rate"`
	// Optimizer is "adam" (gorgonia's AdamSolver) or "sgd" (gorgonia's
	// VanillaSolver). Default "adam".
	Optimizer string `yaml:"optimizer" json:"optimizer"`
	// L2 is the coefficient of the L2 penalty on weight matrices and
	// embedding tables (not biases), added to the loss. Default 1e-5; a
	// negative value disables the penalty.
	L2 float64 `yaml:"l2" json:"l2"`
	// BatchSize is the number of rows of the training graph; TrainBatch
	// splits longer inputs into batches of this size and pads the last one.
	// Default 128.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// Seed seeds weight initialisation. Default 1.
	Seed uint64 `yaml:"seed" json:"seed"`
}

// WithDefaults returns a copy of a with every zero field set to its default.
// Slices are copied, so the result shares no memory with a.
func (a Arch) WithDefaults() Arch {
	out := a
	out.NumericFeatures = append([]string(nil), a.NumericFeatures...)
	if len(a.TokenFields) == 0 {
		out.TokenFields = []string{"category", "brand", "term"}
	} else {
		out.TokenFields = append([]string(nil), a.TokenFields...)
	}
	if out.HashBuckets == 0 {
		out.HashBuckets = DefaultHashBuckets
	}
	if out.EmbedDim == 0 {
		out.EmbedDim = DefaultEmbedDim
	}
	if len(a.Hidden) == 0 {
		out.Hidden = []int{32, 16}
	} else {
		out.Hidden = append([]int(nil), a.Hidden...)
	}
	if len(a.Heads) == 0 {
		out.Heads = []string{"purchase_propensity", "repeat_purchase"}
	} else {
		out.Heads = append([]string(nil), a.Heads...)
	}
	if out.LearningRate == 0 {
		out.LearningRate = DefaultLearningRate
	}
	if out.Optimizer == "" {
		out.Optimizer = DefaultOptimizer
	}
	if out.L2 == 0 {
		out.L2 = DefaultL2
	}
	if out.BatchSize == 0 {
		out.BatchSize = DefaultBatchSize
	}
	if out.Seed == 0 {
		out.Seed = DefaultSeed
	}
	return out
}

// Validate reports whether the effective architecture (a.WithDefaults()) is
// usable. Errors wrap ErrInvalidArch.
func (a Arch) Validate() error {
	return a.WithDefaults().validate()
}

// validate checks an architecture whose defaults are already applied.
func (a Arch) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidArch, fmt.Sprintf(format, args...))
	}
	if len(a.NumericFeatures) > MaxNumericFeatures {
		return bad("%d numeric features, at most %d", len(a.NumericFeatures), MaxNumericFeatures)
	}
	if len(a.TokenFields) > MaxTokenFields {
		return bad("%d token fields, at most %d", len(a.TokenFields), MaxTokenFields)
	}
	if len(a.NumericFeatures)+len(a.TokenFields) == 0 {
		return bad("no inputs")
	}
	inputs := make(map[string]bool, len(a.NumericFeatures)+len(a.TokenFields))
	for _, group := range [...]struct {
		what  string
		names []string
	}{{"numeric feature", a.NumericFeatures}, {"token field", a.TokenFields}} {
		for i, n := range group.names {
			if n == "" || len(n) > MaxNameLen {
				return bad("%s %d: name must have 1..%d bytes", group.what, i, MaxNameLen)
			}
			if inputs[n] {
				return bad("input name %q used twice", n)
			}
			inputs[n] = true
		}
	}
	if a.HashBuckets < 1 || a.HashBuckets > MaxHashBuckets {
		return bad("hash_buckets %d not in [1, %d]", a.HashBuckets, MaxHashBuckets)
	}
	if a.EmbedDim < 1 || a.EmbedDim > MaxEmbedDim {
		return bad("embed_dim %d not in [1, %d]", a.EmbedDim, MaxEmbedDim)
	}
	if len(a.Hidden) > MaxHiddenLayers {
		return bad("%d hidden layers, at most %d", len(a.Hidden), MaxHiddenLayers)
	}
	for i, w := range a.Hidden {
		if w < 1 || w > MaxHiddenWidth {
			return bad("hidden[%d] = %d not in [1, %d]", i, w, MaxHiddenWidth)
		}
	}
	if len(a.Heads) < 1 || len(a.Heads) > MaxHeads {
		return bad("%d heads, want 1..%d", len(a.Heads), MaxHeads)
	}
	heads := make(map[string]bool, len(a.Heads))
	for i, h := range a.Heads {
		if h == "" || len(h) > MaxNameLen {
			return bad("head %d: name must have 1..%d bytes", i, MaxNameLen)
		}
		if heads[h] {
			return bad("head %q used twice", h)
		}
		heads[h] = true
	}
	if !(a.LearningRate > 0 && a.LearningRate <= 10) {
		return bad("learning_rate %v not in (0, 10]", a.LearningRate)
	}
	if a.Optimizer != OptimizerAdam && a.Optimizer != OptimizerSGD {
		return bad("optimizer %q is neither %q nor %q", a.Optimizer, OptimizerAdam, OptimizerSGD)
	}
	if math.IsNaN(a.L2) || math.IsInf(a.L2, 0) || a.L2 > 1 {
		return bad("l2 %v must be finite and at most 1", a.L2)
	}
	if a.BatchSize < 1 || a.BatchSize > MaxBatchSize {
		return bad("batch_size %d not in [1, %d]", a.BatchSize, MaxBatchSize)
	}
	if p := a.numParams(); p > MaxParams {
		return bad("%d parameters, at most %d", p, MaxParams)
	}
	return nil
}

// inputWidth is the width of the concatenated input layer.
func (a Arch) inputWidth() int {
	return len(a.NumericFeatures) + len(a.TokenFields)*a.EmbedDim
}

// l2 is the effective L2 coefficient (negative means disabled).
func (a Arch) l2() float64 {
	if a.L2 < 0 {
		return 0
	}
	return a.L2
}

// layerDims returns the (in, out) shape of every dense layer, the heads'
// layer last.
func (a Arch) layerDims() [][2]int {
	dims := make([][2]int, 0, len(a.Hidden)+1)
	in := a.inputWidth()
	for _, w := range a.Hidden {
		dims = append(dims, [2]int{in, w})
		in = w
	}
	return append(dims, [2]int{in, len(a.Heads)})
}

// numParams counts every weight. The bounds checked before it is called keep
// the arithmetic far from overflow.
func (a Arch) numParams() int {
	n := len(a.TokenFields) * a.HashBuckets * a.EmbedDim
	for _, d := range a.layerDims() {
		n += d[0]*d[1] + d[1]
	}
	return n
}
