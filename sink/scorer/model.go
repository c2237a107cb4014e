package scorer

import (
	"cmp"
	"math"
	"slices"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
	"github.com/streamprofile/streamprofile/model/registry"
)

// netScorer scores snapshots with one served champion, reusing its
// buffers. It belongs to one goroutine.
type netScorer struct {
	served *registry.Served
	heads  [numHeads]int // index of each head in the arch (-1: absent)
	ex     nn.Example
	probs  []float64
	full   []float64 // scratch of explain
	occl   []float64
	top    int

	// With derived inputs (inputs.DerivedSlots): their slots, which
	// numeric slots are derived or summary features, the slot of each
	// summary feature (-1: not an input), and scratch.
	slots    []int
	derived  []bool
	summary  []bool
	sumSlot  []int
	sumNames []string
	dvals    []float64
	dsave    []float64
}

// bind switches to s (nil: no model).
func (n *netScorer) bind(s *registry.Served) {
	if s == n.served {
		return
	}
	n.served = s
	n.heads = [numHeads]int{-1, -1}
	if s == nil {
		return
	}
	a := s.Encoder.Arch()
	for i, h := range a.Heads {
		switch h {
		case inputs.HeadPurchase:
			n.heads[headPurchase] = i
		case inputs.HeadRepeat:
			n.heads[headRepeat] = i
		}
	}
	n.probs = make([]float64, len(a.Heads))
	n.slots = s.Encoder.DerivedSlots()
	n.derived, n.summary, n.sumSlot, n.sumNames = nil, nil, nil, nil
	if len(n.slots) == 0 {
		return
	}
	n.derived, n.summary = make([]bool, len(a.NumericFeatures)), make([]bool, len(a.NumericFeatures))
	for _, i := range n.slots {
		n.derived[i] = true
	}
	n.sumNames = inputs.SummaryFeatures()
	n.sumSlot = make([]int, len(n.sumNames))
	for k, name := range n.sumNames {
		n.sumSlot[k] = slices.Index(a.NumericFeatures, name)
		if n.sumSlot[k] >= 0 {
			n.summary[n.sumSlot[k]] = true
		}
	}
	n.dsave = make([]float64, len(n.slots))
}

// version returns the bound model's version (0: none).
func (n *netScorer) version() int64 {
	if n.served == nil {
		return 0
	}
	return n.served.Version.Number
}

// predict encodes snap into ex (reusing its buffers), and its summary
// into sum when the model has derived inputs (what explain needs besides
// ex), and returns the network's purchase and repeat probabilities (NaN
// without a model or head).
func (n *netScorer) predict(ex *nn.Example, sum *inputs.Summary, snap *features.Snapshot) ([numHeads]float64, error) {
	out := [numHeads]float64{math.NaN(), math.NaN()}
	if n.served == nil {
		return out, nil
	}
	*ex = n.served.Encoder.EncodeInto(*ex, snap)
	if len(n.slots) > 0 {
		*sum = inputs.SummaryOf(snap)
	}
	p, err := n.served.Model.PredictInto(n.probs, *ex)
	if err != nil {
		return out, err
	}
	for h, i := range n.heads {
		if i >= 0 {
			out[h] = p[i]
		}
	}
	return out, nil
}

// explain returns the top contributions per head for ex, an example the
// bound model predicted from a snapshot with summary sum (see predict):
// the score minus the score of the snapshot without the input (a numeric
// feature at 0, a token field empty). For inputs other than the summary
// features it is nn.Model.Explain with the all-absent baseline. A summary
// feature (inputs.SummaryFeatures) of a model with derived inputs is
// occluded as removing it from the snapshot does: its slot at 0 and the
// derived slots at inputs.Encoder.DerivedWithout's values (at most one
// BG/NBD evaluation each); the derived inputs are not entries of their
// own, their effect is the summary features'. It is computed only for the
// inputs that are present: an absent input contributes exactly 0, and
// most of a snapshot's inputs are absent (TestSparseExplainIsModelExplain).
// Each present input costs one forward pass.
func (n *netScorer) explain(ex nn.Example, sum *inputs.Summary) ([numHeads][]contribution, error) {
	var expl [numHeads][]contribution
	if n.served == nil || n.top <= 0 {
		return expl, nil
	}
	m := n.served.Model
	a := n.served.Encoder.Arch()
	if len(n.full) != len(a.Heads) {
		n.full, n.occl = make([]float64, len(a.Heads)), make([]float64, len(a.Heads))
	}
	full, err := m.PredictInto(n.full, ex)
	if err != nil {
		return expl, err
	}
	for h := range expl {
		expl[h] = make([]contribution, 0, 16)
	}
	record := func(input string, occl []float64) {
		for h, i := range n.heads {
			if i >= 0 {
				if d := full[i] - occl[i]; d != 0 {
					expl[h] = append(expl[h], contribution{Input: input, Delta: d})
				}
			}
		}
	}
	for i, name := range a.NumericFeatures {
		x := ex.Numeric[i]
		if x == 0 || n.derived != nil && (n.derived[i] || n.summary[i]) {
			continue
		}
		ex.Numeric[i] = 0
		occl, err := m.PredictInto(n.occl, ex)
		ex.Numeric[i] = x
		if err != nil {
			return expl, err
		}
		record(name, occl)
	}
	for k, name := range n.sumNames {
		if sum[k] == 0 {
			continue // absent: removing it changes nothing
		}
		vals := n.served.Encoder.DerivedWithout(n.dvals, *sum, k)
		n.dvals = vals
		changed := false
		for j, i := range n.slots {
			n.dsave[j] = ex.Numeric[i]
			changed = changed || vals[j] != ex.Numeric[i]
		}
		at := n.sumSlot[k]
		x := 0.0
		if at >= 0 {
			x = ex.Numeric[at]
		}
		if x == 0 && !changed {
			continue
		}
		if at >= 0 {
			ex.Numeric[at] = 0
		}
		for j, i := range n.slots {
			ex.Numeric[i] = vals[j]
		}
		occl, err := m.PredictInto(n.occl, ex)
		if at >= 0 {
			ex.Numeric[at] = x
		}
		for j, i := range n.slots {
			ex.Numeric[i] = n.dsave[j]
		}
		if err != nil {
			return expl, err
		}
		record(name, occl)
	}
	for _, f := range a.TokenFields {
		ids := ex.Tokens[f]
		if len(ids) == 0 {
			continue
		}
		ex.Tokens[f] = nil
		occl, err := m.PredictInto(n.occl, ex)
		ex.Tokens[f] = ids
		if err != nil {
			return expl, err
		}
		record(f, occl)
	}
	for h := range expl {
		expl[h] = topOf(expl[h], n.top)
	}
	return expl, nil
}

// score predicts and explains snap.
func (n *netScorer) score(snap *features.Snapshot) ([numHeads]float64, [numHeads][]contribution, error) {
	var ex nn.Example
	var sum inputs.Summary
	out, err := n.predict(&ex, &sum, snap)
	if err != nil || n.served == nil {
		return out, [numHeads][]contribution{}, err
	}
	expl, err := n.explain(ex, &sum)
	return out, expl, err
}

// topOf keeps the k contributions with the largest |Delta| (ties by
// name), dropping zero and NaN deltas.
func topOf(cs []contribution, k int) []contribution {
	out := slices.DeleteFunc(cs, func(c contribution) bool { return c.Delta == 0 || math.IsNaN(c.Delta) })
	slices.SortFunc(out, func(a, b contribution) int {
		return cmp.Or(cmp.Compare(math.Abs(b.Delta), math.Abs(a.Delta)), cmp.Compare(a.Input, b.Input))
	})
	if len(out) > k {
		out = out[:k]
	}
	return slices.Clip(out)
}

// publicExplanation converts stored contributions (negated for churn,
// the complement of repeat).
func publicExplanation(cs []contribution, negate bool) []Contribution {
	out := make([]Contribution, len(cs))
	for i, c := range cs {
		d := c.Delta
		if negate {
			d = -d
		}
		out[i] = Contribution{Feature: c.Input, Label: Label(c.Input), Contribution: d}
	}
	return out
}
