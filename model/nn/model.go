package nn

import (
	"math"
	"sync"
)

// Model is an immutable snapshot of a Network's weights and normaliser,
// taken with Network.Snapshot, decoded with UnmarshalBinary or read with
// Load. All its methods are safe for concurrent use; none allocates more than
// its result (scratch space comes from a pool).
type Model struct {
	arch     Arch
	steps    uint64
	examples uint64
	norm     normalizer // running statistics, kept to resume training
	shift    []float64  // frozen standardisation
	scale    []float64
	emb      [][]float64 // per token field: HashBuckets x EmbedDim, row-major
	layers   []dense     // hidden layers, then the heads' layer
	maxWidth int         // widest layer output (or input)
	scratch  sync.Pool   // *[]float64 of scratchLen()
}

// dense is one fully connected layer: out = x·W + b, W row-major in x out.
type dense struct {
	in, out int
	w, b    []float64
}

// newModel builds a Model around weights it takes ownership of.
func newModel(arch Arch, steps, examples uint64, norm normalizer, emb [][]float64, layers []dense) *Model {
	m := &Model{arch: arch, steps: steps, examples: examples, norm: norm, emb: emb, layers: layers}
	n := len(arch.NumericFeatures)
	m.shift, m.scale = make([]float64, n), make([]float64, n)
	norm.freeze(m.shift, m.scale)
	m.maxWidth = arch.inputWidth()
	for _, l := range layers {
		m.maxWidth = max(m.maxWidth, l.out)
	}
	return m
}

// Arch returns the model's architecture (a copy).
func (m *Model) Arch() Arch { return m.arch.WithDefaults() }

// Steps returns the number of optimiser steps the weights have taken.
func (m *Model) Steps() uint64 { return m.steps }

// Examples returns the number of training examples that have updated the
// normaliser.
func (m *Model) Examples() uint64 { return m.examples }

// scratchLen is the scratch space one forward pass needs: the input layer
// plus two ping-pong activation buffers.
func (m *Model) scratchLen() int { return m.arch.inputWidth() + 2*m.maxWidth }

func (m *Model) getScratch() *[]float64 {
	if p, ok := m.scratch.Get().(*[]float64); ok {
		return p
	}
	s := make([]float64, m.scratchLen())
	return &s
}

// Predict returns one probability per head (in Arch.Heads order) for ex.
// Its labels and mask are ignored. It errors, never panics, on invalid
// inputs (see InputError).
func (m *Model) Predict(ex Example) ([]float64, error) {
	return m.PredictInto(make([]float64, len(m.arch.Heads)), ex)
}

// PredictInto is Predict writing into dst, which must have room for one
// value per head (it is resliced to that length); it then allocates nothing.
func (m *Model) PredictInto(dst []float64, ex Example) ([]float64, error) {
	if err := m.arch.checkInputs(&ex, -1); err != nil {
		return nil, err
	}
	dst = dst[:len(m.arch.Heads)]
	sp := m.getScratch()
	s := *sp
	x := s[:m.arch.inputWidth()]
	m.encode(x, &ex)
	m.forward(dst, x, s[len(x):])
	for i, z := range dst {
		dst[i] = sigmoid(z)
	}
	m.scratch.Put(sp)
	return dst, nil
}

// encode writes the input layer of a validated example into x.
func (m *Model) encode(x []float64, ex *Example) {
	n := len(m.arch.NumericFeatures)
	standardize(x[:n], ex.Numeric, m.shift, m.scale)
	d := m.arch.EmbedDim
	for f, field := range m.arch.TokenFields {
		bagMean(x[n+f*d:n+(f+1)*d], m.emb[f], ex.Tokens[field], d)
	}
}

// bagMean writes the mean of the embedding rows ids of table into dst, or
// zeros for an empty bag.
func bagMean(dst, table []float64, ids []uint32, d int) {
	clear(dst)
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		row := table[int(id)*d : int(id)*d+d]
		for j, v := range row {
			dst[j] += v
		}
	}
	inv := 1 / float64(len(ids))
	for j := range dst {
		dst[j] *= inv
	}
}

// forward runs the MLP on the input layer x and writes the heads' logits
// into logits. scratch must hold 2*maxWidth values.
func (m *Model) forward(logits, x, scratch []float64) {
	a, b := scratch[:m.maxWidth], scratch[m.maxWidth:2*m.maxWidth]
	in := x
	last := len(m.layers) - 1
	for i := range m.layers {
		l := &m.layers[i]
		out := a[:l.out]
		if i == last {
			out = logits
		}
		copy(out, l.b)
		for k, xk := range in {
			if xk == 0 {
				continue
			}
			row := l.w[k*l.out : k*l.out+l.out]
			for j, w := range row {
				out[j] += xk * w
			}
		}
		if i != last {
			for j, v := range out {
				if v < 0 {
					out[j] = 0
				}
			}
		}
		in = out
		a, b = b, a
	}
}

// sigmoid is the logistic function, evaluated without overflow.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}
