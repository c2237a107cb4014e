package nn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Network is the trainable network: a gorgonia expression graph built once
// for Arch.BatchSize rows, its tape machine, its solver and the running
// normaliser statistics.
//
// A Network is owned by one goroutine (the trainer): TrainBatch, Snapshot
// and Close must not be called concurrently. Scorers use the immutable
// Models returned by Snapshot.
type Network struct {
	arch     Arch
	steps    uint64
	examples uint64
	norm     normalizer
	shift    []float64 // standardisation frozen from norm before each batch
	scale    []float64

	g      *gorgonia.ExprGraph
	vm     gorgonia.VM
	solver gorgonia.Solver
	closed bool

	// Inputs of the graph, each bound once to a tensor that is refilled in
	// place for every batch.
	numeric  *gorgonia.Node // BatchSize x len(NumericFeatures); nil without numeric features
	numericT *tensor.Dense
	bags     []*bagLayout   // per token field, read by its BagMean op
	labels   *gorgonia.Node // BatchSize x heads
	labelsT  *tensor.Dense
	weight   *gorgonia.Node // BatchSize x heads: 1/n where the label is known, else 0
	weightT  *tensor.Dense

	// Learnable parameters: embedding tables, then (W, b) per dense layer.
	emb        []*gorgonia.Node
	layerW     []*gorgonia.Node
	layerB     []*gorgonia.Node
	learnables gorgonia.Nodes

	cost *gorgonia.Node // scalar

	// Copies of the outputs, written by gorgonia.Read instructions while
	// the tape runs: node values themselves may be overwritten later in the
	// tape when the machine reuses their registers.
	costV, logitsV, probsV gorgonia.Value
}

// NewNetwork builds a freshly initialised network for arch (defaults
// applied, then validated).
func NewNetwork(arch Arch) (*Network, error) {
	arch = arch.WithDefaults()
	if err := arch.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(arch.Seed, arch.Seed^0x9e3779b97f4a7c15))
	emb := make([][]float64, len(arch.TokenFields))
	for f := range emb {
		emb[f] = make([]float64, arch.HashBuckets*arch.EmbedDim)
		for i := range emb[f] {
			emb[f][i] = 0.1 * rng.NormFloat64()
		}
	}
	dims := arch.layerDims()
	layers := make([]dense, len(dims))
	for i, d := range dims {
		// He-uniform for ReLU layers, Glorot-uniform for the sigmoid heads.
		limit := math.Sqrt(6 / float64(d[0]))
		if i == len(dims)-1 {
			limit = math.Sqrt(6 / float64(d[0]+d[1]))
		}
		l := dense{in: d[0], out: d[1], w: make([]float64, d[0]*d[1]), b: make([]float64, d[1])}
		for j := range l.w {
			l.w[j] = limit * (2*rng.Float64() - 1)
		}
		layers[i] = l
	}
	return assemble(arch, 0, 0, newNormalizer(len(arch.NumericFeatures)), emb, layers)
}

// NewNetworkFrom builds a network that continues training from m: same
// architecture, weights, normaliser statistics and step counters. Optimiser
// state (Adam moments) starts afresh.
func NewNetworkFrom(m *Model) (*Network, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil model", ErrInvalidArch)
	}
	arch := m.arch.WithDefaults()
	if err := arch.validate(); err != nil {
		return nil, err
	}
	emb := make([][]float64, len(m.emb))
	for f, t := range m.emb {
		emb[f] = append([]float64(nil), t...)
	}
	layers := make([]dense, len(m.layers))
	for i, l := range m.layers {
		layers[i] = dense{in: l.in, out: l.out, w: append([]float64(nil), l.w...), b: append([]float64(nil), l.b...)}
	}
	return assemble(arch, m.steps, m.examples, m.norm.clone(), emb, layers)
}

// assemble builds the graph around the given (owned) weights. This is the
// only place the graph is built; it is never rebuilt per batch.
func assemble(arch Arch, steps, examples uint64, norm normalizer, emb [][]float64, layers []dense) (net *Network, err error) {
	// gorgonia's graph constructors report some failures by panicking
	// (Must); convert any such panic into an error.
	defer func() {
		if r := recover(); r != nil {
			net, err = nil, fmt.Errorf("nn: building graph: %v", r)
		}
	}()
	B, N, T := arch.BatchSize, len(arch.NumericFeatures), len(arch.Heads)
	n := &Network{
		arch: arch, steps: steps, examples: examples, norm: norm,
		shift: make([]float64, N), scale: make([]float64, N),
		g: gorgonia.NewGraph(),
	}
	g := n.g
	matrix := func(name string, rows, cols int, backing []float64) (*gorgonia.Node, *tensor.Dense) {
		if backing == nil {
			backing = make([]float64, rows*cols)
		}
		t := tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(backing))
		return gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(rows, cols), gorgonia.WithName(name), gorgonia.WithValue(t)), t
	}

	var parts gorgonia.Nodes
	if N > 0 {
		n.numeric, n.numericT = matrix("numeric", B, N, nil)
		parts = append(parts, n.numeric)
	}
	for f, field := range arch.TokenFields {
		table, _ := matrix(fmt.Sprintf("emb%d_%s", f, field), arch.HashBuckets, arch.EmbedDim, emb[f])
		layout := newBagLayout(B)
		n.bags, n.emb = append(n.bags, layout), append(n.emb, table)
		parts = append(parts, gorgonia.Must(bagMeanNode(table, layout, field)))
	}
	h := parts[0]
	if len(parts) > 1 {
		h = gorgonia.Must(gorgonia.Concat(1, parts...))
	}
	for i, l := range layers {
		w, _ := matrix(fmt.Sprintf("w%d", i), l.in, l.out, l.w)
		b, _ := matrix(fmt.Sprintf("b%d", i), 1, l.out, l.b)
		n.layerW, n.layerB = append(n.layerW, w), append(n.layerB, b)
		h = gorgonia.Must(gorgonia.BroadcastAdd(gorgonia.Must(gorgonia.Mul(h, w)), b, nil, []byte{0}))
		if i < len(layers)-1 {
			h = gorgonia.Must(gorgonia.Rectify(h))
		}
	}
	probs := gorgonia.Must(gorgonia.Sigmoid(h))
	n.logitsV = tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(B, T))
	n.probsV = tensor.New(tensor.Of(tensor.Float64), tensor.WithShape(B, T))
	gorgonia.Read(hostSide(h), &n.logitsV)
	gorgonia.Read(hostSide(probs), &n.probsV)

	n.labels, n.labelsT = matrix("labels", B, T, nil)
	n.weight, n.weightT = matrix("weight", B, T, nil)
	// Binary cross-entropy from logits z: softplus(z) - z*y, which is
	// -(y log σ(z) + (1-y) log(1-σ(z))) without overflow.
	bce := gorgonia.Must(gorgonia.Sub(gorgonia.Must(gorgonia.Softplus(h)), gorgonia.Must(gorgonia.HadamardProd(h, n.labels))))
	n.cost = gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(n.weight, bce))))

	n.learnables = append(n.learnables, n.emb...)
	for i := range n.layerW {
		n.learnables = append(n.learnables, n.layerW[i], n.layerB[i])
	}
	if l2 := arch.l2(); l2 > 0 {
		var reg *gorgonia.Node
		for _, w := range append(append(gorgonia.Nodes(nil), n.emb...), n.layerW...) {
			sq := gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.Square(w))))
			if reg == nil {
				reg = sq
			} else {
				reg = gorgonia.Must(gorgonia.Add(reg, sq))
			}
		}
		reg = gorgonia.Must(gorgonia.Mul(gorgonia.NewConstant(l2, gorgonia.WithName("l2")), reg))
		n.cost = gorgonia.Must(gorgonia.Add(n.cost, reg))
	}
	gorgonia.Read(hostSide(n.cost), &n.costV)
	if _, err := gorgonia.Grad(n.cost, n.learnables...); err != nil {
		return nil, fmt.Errorf("nn: symbolic gradient: %w", err)
	}
	n.vm = newMachine(g, n.learnables)
	switch arch.Optimizer {
	case OptimizerSGD:
		n.solver = gorgonia.NewVanillaSolver(gorgonia.WithLearnRate(arch.LearningRate))
	default:
		n.solver = gorgonia.NewAdamSolver(gorgonia.WithLearnRate(arch.LearningRate))
	}
	return n, nil
}

// Arch returns the network's architecture (a copy).
func (n *Network) Arch() Arch { return n.arch.WithDefaults() }

// Steps returns the number of optimiser steps taken so far.
func (n *Network) Steps() uint64 { return n.steps }

// TrainBatch takes one optimiser step per Arch.BatchSize examples of exs (the
// last, partial batch is padded with rows that carry no loss) and returns the
// example-weighted mean loss (masked cross-entropy summed over heads, plus
// the L2 penalty) before the steps. The normaliser's statistics are updated
// from each batch before it is encoded.
//
// Every example is validated first; on an invalid one nothing is changed.
// If a batch's loss is not finite its step is skipped and ErrDiverged
// returned (the normaliser has then already seen the batch).
func (n *Network) TrainBatch(exs []Example) (loss float64, err error) {
	if n.closed {
		return 0, ErrClosed
	}
	for i := range exs {
		if err := n.arch.checkInputs(&exs[i], i); err != nil {
			return 0, err
		}
		if err := n.arch.checkLabels(&exs[i], i); err != nil {
			return 0, err
		}
	}
	var total float64
	for start := 0; start < len(exs); start += n.arch.BatchSize {
		chunk := exs[start:min(start+n.arch.BatchSize, len(exs))]
		n.load(chunk, true)
		l, err := n.run()
		if err == nil && (math.IsNaN(l) || math.IsInf(l, 0)) {
			err = fmt.Errorf("%w: loss %v at step %d", ErrDiverged, l, n.steps)
		}
		if err == nil {
			if serr := n.solver.Step(gorgonia.NodesToValueGrads(n.learnables)); serr != nil {
				err = fmt.Errorf("nn: solver step: %w", serr)
			}
		}
		n.vm.Reset()
		if err != nil {
			return 0, err
		}
		n.steps++
		total += l * float64(len(chunk))
	}
	if len(exs) == 0 {
		return 0, nil
	}
	return total / float64(len(exs)), nil
}

// load encodes up to BatchSize validated examples into the graph's input
// tensors, padding the remaining rows. With observe, the normaliser first
// learns from the examples.
func (n *Network) load(exs []Example, observe bool) {
	if observe {
		for i := range exs {
			n.norm.observe(exs[i].Numeric)
		}
		n.examples += uint64(len(exs))
	}
	n.norm.freeze(n.shift, n.scale)
	N, T := len(n.arch.NumericFeatures), len(n.arch.Heads)
	if N > 0 {
		x := n.numericT.Data().([]float64)
		clear(x)
		for i := range exs {
			standardize(x[i*N:(i+1)*N], exs[i].Numeric, n.shift, n.scale)
		}
	}
	for f, field := range n.arch.TokenFields {
		n.bags[f].fill(exs, field)
	}
	y, w := n.labelsT.Data().([]float64), n.weightT.Data().([]float64)
	clear(y)
	clear(w)
	inv := 1 / float64(max(len(exs), 1))
	for i := range exs {
		for h := 0; h < T && h < len(exs[i].Mask); h++ {
			if exs[i].Mask[h] {
				y[i*T+h] = exs[i].Labels[h]
				w[i*T+h] = inv
			}
		}
	}
	// The tensors were refilled in place; rebinding them is cheap and keeps
	// the machine's view explicit.
	if n.numeric != nil {
		_ = gorgonia.Let(n.numeric, n.numericT)
	}
	_ = gorgonia.Let(n.labels, n.labelsT)
	_ = gorgonia.Let(n.weight, n.weightT)
}

// run executes the tape (forward and backward) and returns the cost. The
// caller must Reset the machine afterwards.
func (n *Network) run() (float64, error) {
	if err := n.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("nn: running graph: %w", err)
	}
	c, err := floats(n.costV)
	if err != nil {
		return 0, err
	}
	if len(c) != 1 {
		return 0, errors.New("nn: cost is not a scalar")
	}
	return c[0], nil
}

// Snapshot returns an immutable copy of the current weights and normaliser
// for scoring, saving or fine-tuning.
func (n *Network) Snapshot() (*Model, error) {
	if n.closed {
		return nil, ErrClosed
	}
	emb := make([][]float64, len(n.emb))
	for f, node := range n.emb {
		v, err := floats(node.Value())
		if err != nil {
			return nil, err
		}
		emb[f] = append([]float64(nil), v...)
	}
	dims := n.arch.layerDims()
	layers := make([]dense, len(dims))
	for i, d := range dims {
		w, err := floats(n.layerW[i].Value())
		if err != nil {
			return nil, err
		}
		b, err := floats(n.layerB[i].Value())
		if err != nil {
			return nil, err
		}
		layers[i] = dense{in: d[0], out: d[1], w: append([]float64(nil), w...), b: append([]float64(nil), b...)}
	}
	return newModel(n.arch.WithDefaults(), n.steps, n.examples, n.norm.clone(), emb, layers), nil
}

// graphForward scores up to BatchSize examples with the gorgonia graph
// (normaliser frozen, no step) and returns per-example logits and
// probabilities. It exists to check the plain-Go scorer against the graph.
func (n *Network) graphForward(exs []Example) (logits, probs [][]float64, err error) {
	if len(exs) > n.arch.BatchSize {
		return nil, nil, fmt.Errorf("nn: %d examples exceed batch size %d", len(exs), n.arch.BatchSize)
	}
	n.load(exs, false)
	defer n.vm.Reset()
	if _, err := n.run(); err != nil {
		return nil, nil, err
	}
	T := len(n.arch.Heads)
	for _, out := range []struct {
		val gorgonia.Value
		dst *[][]float64
	}{{n.logitsV, &logits}, {n.probsV, &probs}} {
		v, err := floats(out.val)
		if err != nil {
			return nil, nil, err
		}
		for i := range exs {
			*out.dst = append(*out.dst, append([]float64(nil), v[i*T:(i+1)*T]...))
		}
	}
	return logits, probs, nil
}

// Close releases the machine (and its device resources, if any). The
// Network is unusable afterwards; Models taken from it stay valid.
func (n *Network) Close() error {
	if n.closed {
		return nil
	}
	n.closed = true
	return n.vm.Close()
}

// floats returns the float64 data of a host-resident value (its own backing
// slice for tensors: callers copy it before the next run).
func floats(v gorgonia.Value) ([]float64, error) {
	if v == nil {
		return nil, errors.New("nn: graph value not computed")
	}
	switch d := v.Data().(type) {
	case []float64:
		return d, nil
	case float64:
		return []float64{d}, nil
	}
	return nil, fmt.Errorf("nn: graph value holds %T, want float64", v.Data())
}
