package nn

// InputKind tells whether an input is a numeric feature or a token field.
type InputKind uint8

// The kinds of input.
const (
	NumericInput InputKind = iota + 1
	TokenInput
)

func (k InputKind) String() string {
	switch k {
	case NumericInput:
		return "numeric"
	case TokenInput:
		return "token"
	}
	return "unknown"
}

// Contribution is the signed effect of one input on one head's score.
type Contribution struct {
	// Head names the output.
	Head string
	// Input names the numeric feature or token field.
	Input string
	// Kind is the input's kind.
	Kind InputKind
	// Score is the head's probability for the explained example.
	Score float64
	// Delta is Score minus the head's probability when this input alone is
	// replaced by its baseline: positive when the input raises the score.
	Delta float64
}

// Explain attributes each head's score for ex to its inputs by occlusion:
// every numeric feature and every token field is, one at a time, replaced by
// its baseline value and the change in score recorded. Without a baseline
// (nil), a numeric feature's baseline is the normaliser's running mean
// (standardised value 0) and a token field's is the empty bag; with one, it
// is the baseline example's value for that input.
//
// The result holds len(Heads) × (len(NumericFeatures)+len(TokenFields))
// contributions, grouped by head in Arch.Heads order, inputs in
// NumericFeatures then TokenFields order. It costs one forward pass per input
// plus one.
func (m *Model) Explain(ex Example, baseline *Example) ([]Contribution, error) {
	a := &m.arch
	if err := a.checkInputs(&ex, -1); err != nil {
		return nil, err
	}
	if baseline != nil {
		if err := a.checkInputs(baseline, -1); err != nil {
			return nil, err
		}
	}
	W, T, N, D := a.inputWidth(), len(a.Heads), len(a.NumericFeatures), a.EmbedDim
	buf := make([]float64, 2*W+2*T)
	x, base, full, occl := buf[:W], buf[W:2*W], buf[2*W:2*W+T], buf[2*W+T:]
	m.encode(x, &ex)
	if baseline != nil {
		m.encode(base, baseline)
	}
	sp := m.getScratch()
	defer m.scratch.Put(sp)
	scratch := (*sp)[W:]
	m.forward(full, x, scratch)
	for h := range full {
		full[h] = sigmoid(full[h])
	}
	inputs := N + len(a.TokenFields)
	out := make([]Contribution, T*inputs)
	saved := make([]float64, D)
	for i := 0; i < inputs; i++ {
		lo, hi, name, kind := i, i+1, "", NumericInput
		if i < N {
			name = a.NumericFeatures[i]
		} else {
			f := i - N
			lo, hi, name, kind = N+f*D, N+(f+1)*D, a.TokenFields[f], TokenInput
		}
		seg := x[lo:hi]
		copy(saved, seg)
		copy(seg, base[lo:hi])
		m.forward(occl, x, scratch)
		copy(seg, saved[:hi-lo])
		for h := range occl {
			out[h*inputs+i] = Contribution{Head: a.Heads[h], Input: name, Kind: kind,
				Score: full[h], Delta: full[h] - sigmoid(occl[h])}
		}
	}
	return out, nil
}
