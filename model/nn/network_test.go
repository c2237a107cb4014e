package nn

import (
	"math"
	"testing"
)

func TestGraphAndPlainForwardAgree(t *testing.T) {
	n := newTestNetwork(t, testArch())
	train := synth(1, 256)
	for range 3 {
		if _, err := n.TrainBatch(train); err != nil {
			t.Fatal(err)
		}
	}
	m := snapshot(t, n)
	batch := synth(2, 50) // a partial batch: rows 50..63 are padding
	batch[0].Tokens = nil // empty bags
	batch[1].Tokens = map[string][]uint32{"brand": {3, 3, 3, 7}}
	logits, probs, err := n.graphForward(batch)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, m.arch.inputWidth())
	scratch := make([]float64, 2*m.maxWidth)
	z := make([]float64, len(m.arch.Heads))
	for i, ex := range batch {
		p, err := m.Predict(ex)
		if err != nil {
			t.Fatal(err)
		}
		m.encode(x, &ex)
		m.forward(z, x, scratch)
		for h := range p {
			if d := math.Abs(z[h] - logits[i][h]); d > 1e-9 {
				t.Errorf("example %d head %d: plain logit %v, graph %v", i, h, z[h], logits[i][h])
			}
			if d := math.Abs(p[h] - probs[i][h]); d > 1e-9 {
				t.Errorf("example %d head %d: plain score %v, graph %v", i, h, p[h], probs[i][h])
			}
		}
	}
}

func TestTrainingReducesLossAndSeparates(t *testing.T) {
	n := newTestNetwork(t, testArch())
	batch := synth(3, 64) // one graph batch
	first, err := n.TrainBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	var last float64
	for range 199 {
		if last, err = n.TrainBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	if n.Steps() != 200 {
		t.Errorf("Steps = %d, want 200", n.Steps())
	}
	t.Logf("loss %.4f -> %.4f after 200 steps", first, last)
	if last > 0.2*first {
		t.Errorf("loss went from %.4f to %.4f, want a reduction of at least 80%%", first, last)
	}
	m := snapshot(t, n)
	for h, head := range m.arch.Heads {
		var scores, labels []float64
		for _, ex := range batch {
			if !ex.Mask[h] {
				continue
			}
			p, err := m.Predict(ex)
			if err != nil {
				t.Fatal(err)
			}
			scores, labels = append(scores, p[h]), append(labels, ex.Labels[h])
		}
		got := auc(scores, labels)
		t.Logf("head %s: training AUC %.3f on %d labelled examples", head, got, len(scores))
		if got < 0.9 {
			t.Errorf("head %s: training AUC %.3f, want > 0.9", head, got)
		}
	}
}

func TestSGDOptimizerLearns(t *testing.T) {
	a := testArch()
	a.Optimizer = OptimizerSGD
	a.LearningRate = 0.5
	n := newTestNetwork(t, a)
	batch := synth(4, 64)
	first, err := n.TrainBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	var last float64
	for range 100 {
		if last, err = n.TrainBatch(batch); err != nil {
			t.Fatal(err)
		}
	}
	if last > 0.7*first {
		t.Errorf("sgd: loss went from %.4f to %.4f", first, last)
	}
}

// TestMaskedHeadsDoNotLearn trains two networks from the same seed on the
// same inputs whose unknown labels disagree: every weight must end equal.
// It also checks that a head whose label is never known keeps its own
// output weights untouched.
func TestMaskedHeadsDoNotLearn(t *testing.T) {
	a := testArch()
	a.L2 = -1 // no penalty: only the data term moves weights
	n0, n1 := newTestNetwork(t, a), newTestNetwork(t, a)
	b0, b1 := synth(5, 100), synth(5, 100)
	for i := range b0 {
		b0[i].Mask[1], b1[i].Mask[1] = false, false
		b0[i].Labels[1], b1[i].Labels[1] = 0, 1
		if i%3 == 0 { // some examples have no known label at all
			b0[i].Mask[0], b1[i].Mask[0] = false, false
			b0[i].Labels[0], b1[i].Labels[0] = 1, 0
		}
	}
	before := snapshot(t, n0)
	for range 20 {
		if _, err := n0.TrainBatch(b0); err != nil {
			t.Fatal(err)
		}
		if _, err := n1.TrainBatch(b1); err != nil {
			t.Fatal(err)
		}
	}
	m0, m1 := snapshot(t, n0), snapshot(t, n1)
	enc0, _ := m0.MarshalBinary()
	enc1, _ := m1.MarshalBinary()
	if string(enc0) != string(enc1) {
		t.Error("networks trained on different unknown labels differ")
	}
	head := len(m0.layers) - 1
	out := m0.layers[head].out
	for k := 0; k < m0.layers[head].in; k++ {
		if got, was := m0.layers[head].w[k*out+1], before.layers[head].w[k*out+1]; got != was {
			t.Fatalf("never-known head's weight %d moved from %v to %v", k, was, got)
		}
	}
	if got, was := m0.layers[head].b[1], before.layers[head].b[1]; got != was {
		t.Errorf("never-known head's bias moved from %v to %v", was, got)
	}
	if m0.layers[head].b[0] == before.layers[head].b[0] {
		t.Error("known head's bias did not move: the test trains nothing")
	}
}

func TestAllUnknownLabelsLeaveOnlyPenalty(t *testing.T) {
	a := testArch()
	n := newTestNetwork(t, a)
	batch := synth(6, 10)
	for i := range batch {
		batch[i].Mask = []bool{false, false}
	}
	m := snapshot(t, n)
	var want float64
	for _, t := range m.emb {
		for _, v := range t {
			want += v * v
		}
	}
	for _, l := range m.layers {
		for _, v := range l.w {
			want += v * v
		}
	}
	want *= m.arch.L2
	got, err := n.TrainBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-12*math.Max(1, want) {
		t.Errorf("loss with every label unknown = %v, want the L2 penalty %v", got, want)
	}
}

// TestGradientCheck compares gorgonia's symbolic gradients with central
// finite differences of the graph's cost on a tiny network.
func TestGradientCheck(t *testing.T) {
	a := Arch{
		NumericFeatures: []string{"a", "b"},
		TokenFields:     []string{"f"},
		HashBuckets:     5,
		EmbedDim:        2,
		Hidden:          []int{3},
		Heads:           []string{"h0", "h1"},
		L2:              1e-2,
		BatchSize:       4,
		Seed:            7,
	}
	n := newTestNetwork(t, a)
	batch := []Example{
		{Numeric: []float64{1, -2}, Tokens: map[string][]uint32{"f": {0, 3, 3}}, Labels: []float64{1, 0}, Mask: []bool{true, true}},
		{Numeric: []float64{5, 0.5}, Tokens: map[string][]uint32{"f": {1}}, Labels: []float64{0, 1}, Mask: []bool{true, false}},
		{Numeric: []float64{0, 3}, Labels: []float64{1, 1}, Mask: []bool{false, true}},
	}
	// Give the normaliser statistics, then freeze them for the check.
	if _, err := n.TrainBatch(batch); err != nil {
		t.Fatal(err)
	}
	n.load(batch, false)
	if _, err := n.run(); err != nil {
		t.Fatal(err)
	}
	grads := make([][]float64, len(n.learnables))
	for i, node := range n.learnables {
		g, err := node.Grad()
		if err != nil {
			t.Fatalf("%s: %v", node.Name(), err)
		}
		grads[i] = append([]float64(nil), g.Data().([]float64)...)
	}
	n.vm.Reset()
	cost := func() float64 {
		c, err := n.run()
		n.vm.Reset()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const eps = 1e-6
	checked, nonzero := 0, 0
	for i, node := range n.learnables {
		w := node.Value().Data().([]float64)
		for j := range w {
			orig := w[j]
			w[j] = orig + eps
			up := cost()
			w[j] = orig - eps
			down := cost()
			w[j] = orig
			numeric := (up - down) / (2 * eps)
			if d := math.Abs(numeric - grads[i][j]); d > 1e-6*math.Max(1, math.Abs(numeric)) {
				t.Errorf("%s[%d]: symbolic %.10g, numeric %.10g", node.Name(), j, grads[i][j], numeric)
			}
			checked++
			if math.Abs(numeric) > 1e-4 {
				nonzero++
			}
		}
	}
	// Most parameters must matter, or the comparison says little.
	if nonzero < checked/2 {
		t.Errorf("only %d of %d gradients are non-negligible", nonzero, checked)
	}
	// 5x2 embedding + (4x3 + 3) + (3x2 + 2) weights.
	if checked != 10+15+8 {
		t.Errorf("checked %d parameters, want 33", checked)
	}
}

func TestInvalidInputs(t *testing.T) {
	a := testArch()
	n := newTestNetwork(t, a)
	m := snapshot(t, n)
	good := synth(7, 1)[0]
	mod := func(f func(*Example)) Example {
		ex := good
		ex.Numeric = append([]float64(nil), good.Numeric...)
		ex.Tokens = map[string][]uint32{}
		for k, v := range good.Tokens {
			ex.Tokens[k] = append([]uint32(nil), v...)
		}
		ex.Labels = append([]float64(nil), good.Labels...)
		ex.Mask = append([]bool(nil), good.Mask...)
		f(&ex)
		return ex
	}
	for _, tc := range []struct {
		name      string
		ex        Example
		err       error
		trainOnly bool
	}{
		{"short numeric", mod(func(e *Example) { e.Numeric = e.Numeric[:3] }), ErrNumericLength, false},
		{"long numeric", mod(func(e *Example) { e.Numeric = append(e.Numeric, 1) }), ErrNumericLength, false},
		{"nil numeric", mod(func(e *Example) { e.Numeric = nil }), ErrNumericLength, false},
		{"NaN numeric", mod(func(e *Example) { e.Numeric[2] = math.NaN() }), ErrNonFinite, false},
		{"Inf numeric", mod(func(e *Example) { e.Numeric[0] = math.Inf(-1) }), ErrNonFinite, false},
		{"bucket out of range", mod(func(e *Example) { e.Tokens["term"] = []uint32{1, 64} }), ErrBucketRange, false},
		{"unknown token field", mod(func(e *Example) { e.Tokens["colour"] = []uint32{1} }), ErrUnknownField, false},
		{"short mask", mod(func(e *Example) { e.Mask = e.Mask[:1] }), ErrLabels, true},
		{"short labels", mod(func(e *Example) { e.Labels = nil }), ErrLabels, true},
		{"label above 1", mod(func(e *Example) { e.Labels[0], e.Mask[0] = 2, true }), ErrLabels, true},
		{"NaN known label", mod(func(e *Example) { e.Labels[0], e.Mask[0] = math.NaN(), true }), ErrNonFinite, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := m.MarshalBinary()
			_, err := n.TrainBatch([]Example{good, tc.ex})
			var ie *InputError
			if !errorsAs(err, &ie) || !errorsIs(err, tc.err) || ie.Example != 1 {
				t.Errorf("TrainBatch: err = %v, want InputError for example 1 wrapping %v", err, tc.err)
			}
			after, _ := snapshot(t, n).MarshalBinary()
			if string(before) != string(after) {
				t.Error("a rejected batch changed the network")
			}
			_, perr := m.Predict(tc.ex)
			_, eerr := m.Explain(tc.ex, nil)
			if tc.trainOnly {
				if perr != nil || eerr != nil {
					t.Errorf("Predict/Explain ignore labels, got %v / %v", perr, eerr)
				}
				return
			}
			if !errorsIs(perr, tc.err) {
				t.Errorf("Predict: err = %v, want %v", perr, tc.err)
			}
			if !errorsIs(eerr, tc.err) {
				t.Errorf("Explain: err = %v, want %v", eerr, tc.err)
			}
		})
	}
	t.Run("NaN unknown label is ignored", func(t *testing.T) {
		ex := mod(func(e *Example) { e.Labels[1], e.Mask[1] = math.NaN(), false })
		if _, err := n.TrainBatch([]Example{ex}); err != nil {
			t.Errorf("TrainBatch: %v", err)
		}
	})
	t.Run("closed network", func(t *testing.T) {
		c := newTestNetwork(t, a)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.TrainBatch([]Example{good}); !errorsIs(err, ErrClosed) {
			t.Errorf("TrainBatch after Close: %v", err)
		}
		if _, err := c.Snapshot(); !errorsIs(err, ErrClosed) {
			t.Errorf("Snapshot after Close: %v", err)
		}
	})
}

func TestNormalizerMatchesBatchStatistics(t *testing.T) {
	n := newTestNetwork(t, testArch())
	batch := synth(8, 150) // three graph batches: 64, 64, 22 rows
	if _, err := n.TrainBatch(batch); err != nil {
		t.Fatal(err)
	}
	if n.Steps() != 3 {
		t.Errorf("Steps = %d, want 3", n.Steps())
	}
	m := snapshot(t, n)
	if m.Examples() != 150 {
		t.Errorf("Examples = %d, want 150", m.Examples())
	}
	for i := range m.arch.NumericFeatures {
		var mean, sq float64
		for _, ex := range batch {
			mean += squash(ex.Numeric[i])
		}
		mean /= float64(len(batch))
		for _, ex := range batch {
			d := squash(ex.Numeric[i]) - mean
			sq += d * d
		}
		std := math.Sqrt(sq / float64(len(batch)))
		if math.Abs(m.shift[i]-mean) > 1e-9 || math.Abs(1/m.scale[i]-std) > 1e-9 {
			t.Errorf("feature %d: shift %v scale %v, want mean %v std %v", i, m.shift[i], 1/m.scale[i], mean, std)
		}
	}
	// Scoring never updates the statistics.
	before := append([]float64(nil), n.norm.mean...)
	if _, _, err := n.graphForward(batch[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict(batch[0]); err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if n.norm.mean[i] != before[i] {
			t.Fatal("scoring changed the normaliser")
		}
	}
}

func TestSquash(t *testing.T) {
	for _, x := range []float64{0, 1e-300, 0.5, 1, 10, 1e6, 1e300, -0.5, -1, -1e6} {
		y := squash(x)
		if (x > 0) != (y > 0) || (x < 0) != (y < 0) {
			t.Errorf("squash(%v) = %v changes sign", x, y)
		}
		if back := unsquash(y); math.Abs(back-x) > 1e-12*math.Max(1, math.Abs(x)) {
			t.Errorf("unsquash(squash(%v)) = %v", x, back)
		}
	}
	if squash(math.E-1) != 1 {
		t.Errorf("squash(e-1) = %v, want 1", squash(math.E-1))
	}
}

// TestGeneralizes trains on one sample of the synthetic problem and scores
// another: the network must rank held-out examples well, not just memorise.
func TestGeneralizes(t *testing.T) {
	a := testArch()
	a.BatchSize = 128
	n := newTestNetwork(t, a)
	train, test := synth(50, 1024), synth(51, 1000)
	for range 10 {
		if _, err := n.TrainBatch(train); err != nil {
			t.Fatal(err)
		}
	}
	m := snapshot(t, n)
	for h, head := range m.arch.Heads {
		var scores, labels []float64
		for _, ex := range test {
			if !ex.Mask[h] {
				continue
			}
			p, err := m.Predict(ex)
			if err != nil {
				t.Fatal(err)
			}
			scores, labels = append(scores, p[h]), append(labels, ex.Labels[h])
		}
		got := auc(scores, labels)
		t.Logf("head %s: held-out AUC %.3f on %d examples", head, got, len(scores))
		if got < 0.85 {
			t.Errorf("head %s: held-out AUC %.3f, want > 0.85", head, got)
		}
	}
}
