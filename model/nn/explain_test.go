package nn

import (
	"math"
	"testing"
)

// occludeRaw returns ex with one input set to its baseline through the
// public Example: a numeric feature to the raw value whose standardised
// value is 0 (the running mean, mapped back through squash), a token field
// to the empty bag.
func occludeRaw(m *Model, ex Example, c Contribution) Example {
	out := ex
	out.Numeric = append([]float64(nil), ex.Numeric...)
	out.Tokens = make(map[string][]uint32, len(ex.Tokens))
	for k, v := range ex.Tokens {
		out.Tokens[k] = v
	}
	switch c.Kind {
	case NumericInput:
		for i, name := range m.arch.NumericFeatures {
			if name == c.Input {
				out.Numeric[i] = unsquash(m.shift[i])
			}
		}
	case TokenInput:
		delete(out.Tokens, c.Input)
	}
	return out
}

func TestExplainFaithful(t *testing.T) {
	a := testArch()
	n := newTestNetwork(t, a)
	train := synth(20, 512)
	for range 30 {
		if _, err := n.TrainBatch(train); err != nil {
			t.Fatal(err)
		}
	}
	m := snapshot(t, n)
	inputs := len(a.NumericFeatures) + 3
	checked := 0
	for _, ex := range synth(21, 40) {
		cs, err := m.Explain(ex, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != len(m.arch.Heads)*inputs {
			t.Fatalf("%d contributions, want %d", len(cs), len(m.arch.Heads)*inputs)
		}
		score, err := m.Predict(ex)
		if err != nil {
			t.Fatal(err)
		}
		for h, head := range m.arch.Heads {
			per := cs[h*inputs : (h+1)*inputs]
			top := per[0]
			for i, c := range per {
				if c.Head != head || c.Score != score[h] {
					t.Fatalf("contribution %d of head %s: %+v (score %v)", i, head, c, score[h])
				}
				if math.Abs(c.Delta) > math.Abs(top.Delta) {
					top = c
				}
			}
			if math.Abs(top.Delta) < 1e-6 {
				continue
			}
			occluded, err := m.Predict(occludeRaw(m, ex, top))
			if err != nil {
				t.Fatal(err)
			}
			moved := occluded[h] - score[h]
			if math.Signbit(moved) == math.Signbit(top.Delta) {
				t.Errorf("head %s: removing %s (delta %+.4f) moved the score by %+.4f", head, top.Input, top.Delta, moved)
			}
			if math.Abs(moved+top.Delta) > 1e-9 {
				t.Errorf("head %s: removing %s moved the score by %+.12f, Explain said %+.12f", head, top.Input, moved, -top.Delta)
			}
			checked++
		}
	}
	if checked < 60 {
		t.Errorf("only %d of 80 explanations had a non-negligible top input", checked)
	}
}

func TestExplainWithBaseline(t *testing.T) {
	_, m := trainedModel(t)
	exs := synth(22, 2)
	ex, base := exs[0], exs[1]
	cs, err := m.Explain(ex, &base)
	if err != nil {
		t.Fatal(err)
	}
	score, _ := m.Predict(ex)
	inputs := len(m.arch.NumericFeatures) + len(m.arch.TokenFields)
	for i, c := range cs {
		// Replace this one input by the baseline's value.
		swapped := ex
		swapped.Numeric = append([]float64(nil), ex.Numeric...)
		swapped.Tokens = map[string][]uint32{}
		for k, v := range ex.Tokens {
			swapped.Tokens[k] = v
		}
		in := i % inputs
		if in < len(m.arch.NumericFeatures) {
			swapped.Numeric[in] = base.Numeric[in]
		} else {
			f := m.arch.TokenFields[in-len(m.arch.NumericFeatures)]
			delete(swapped.Tokens, f)
			if ids, ok := base.Tokens[f]; ok {
				swapped.Tokens[f] = ids
			}
		}
		p, err := m.Predict(swapped)
		if err != nil {
			t.Fatal(err)
		}
		h := i / inputs
		if want := score[h] - p[h]; math.Abs(c.Delta-want) > 1e-12 {
			t.Errorf("%s/%s: delta %v, want %v", c.Head, c.Input, c.Delta, want)
		}
	}
	// An example explained against itself has no contributions.
	self, err := m.Explain(ex, &ex)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range self {
		if c.Delta != 0 {
			t.Errorf("%s/%s: delta %v against itself", c.Head, c.Input, c.Delta)
		}
	}
	bad := base
	bad.Numeric = nil
	if _, err := m.Explain(ex, &bad); !errorsIs(err, ErrNumericLength) {
		t.Errorf("invalid baseline: err = %v", err)
	}
}
