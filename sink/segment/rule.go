package segment

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// Input is what rules read: one user's features, scores, score deciles and
// affinity lists. Implementations must be deterministic for the duration of
// one Evaluate or NextCheck call. ProfileInput implements it over a
// features.Profile.
type Input interface {
	// Value returns a feature or score by name; false (or NaN) when the
	// user has none, for example a score not computed yet.
	Value(name string) (float64, bool)
	// Top returns the user's ranked affinity names in a dimension, first
	// the strongest; empty when none. The caller decides K (features keeps
	// the top 5).
	Top(dim string) []string
	// Decile returns the decile, 1 (lowest tenth) to 10 (highest tenth),
	// of the user's score among all users; false when unknown (no score,
	// or too few users to rank).
	Decile(score string) (int, bool)
}

// Truth is the three-valued result of a rule. A comparison involving a
// missing value is Unknown; and, or and not follow Kleene's logic
// (false and unknown = false, true or unknown = true, not unknown =
// unknown).
type Truth uint8

// The truth values.
const (
	Unknown Truth = iota
	False
	True
)

func (t Truth) String() string {
	switch t {
	case False:
		return "false"
	case True:
		return "true"
	}
	return "unknown"
}

func truth(b bool) Truth {
	if b {
		return True
	}
	return False
}

// refSrc is where a referenced name is read from.
type refSrc uint8

const (
	srcValue  refSrc = iota + 1 // Input.Value
	srcDecile                   // Input.Decile
	srcTop                      // Input.Top, first entry
	srcList                     // Input.Top, whole list
)

// ref is a name a rule references.
type ref struct {
	src   refSrc
	name  string // value, score or dimension
	label string // as written: rfm_monetary, decile(churn_risk), top_brand, brand_top
	clock bool
}

// Rule is a parsed, type-checked rule. It is immutable and safe for
// concurrent use.
type Rule struct {
	src   string
	root  node
	refs  []ref
	clock bool
}

// ParseRule parses one rule against names (zero Names: DefaultNames). The
// error is an *Error whose RuleColumn locates the problem.
func ParseRule(src string, names Names) (*Rule, error) {
	if names.empty() {
		names = DefaultNames()
	}
	v, err := names.compile()
	if err != nil {
		return nil, err
	}
	return parseRule(src, v)
}

// String returns the rule's source text.
func (r *Rule) String() string { return r.src }

// Eval evaluates the rule.
func (r *Rule) Eval(in Input) Truth { return r.root.eval(in) }

// Refs returns the names the rule references, as written and in order of
// first appearance: value names, decile(score), top_<dim> and <dim>_top.
func (r *Rule) Refs() []string {
	out := make([]string, len(r.refs))
	for i, x := range r.refs {
		out[i] = x.label
	}
	return out
}

// UsesClock reports whether the rule references a clock (Names.Clocks).
func (r *Rule) UsesClock() bool { return r.clock }

// Values returns every name the rule references with its current value, in
// the order of Refs.
func (r *Rule) Values(in Input) []Value {
	out := make([]Value, len(r.refs))
	for i, x := range r.refs {
		v := Value{Name: x.label}
		switch x.src {
		case srcValue:
			v.Kind = NumberValue
			f, ok := in.Value(x.name)
			v.Num, v.Missing = f, !ok || math.IsNaN(f)
		case srcDecile:
			v.Kind = NumberValue
			d, ok := in.Decile(x.name)
			v.Num, v.Missing = float64(d), !ok
		case srcTop:
			v.Kind = StringValue
			if t := in.Top(x.name); len(t) > 0 {
				v.Str = t[0]
			} else {
				v.Missing = true
			}
		case srcList:
			v.Kind = ListValue
			v.List = slices.Clone(in.Top(x.name))
		}
		out[i] = v
	}
	return out
}

// ValueKind is the kind of a Value.
type ValueKind uint8

// The value kinds.
const (
	NumberValue ValueKind = iota + 1 // a feature, score or decile: Num
	StringValue                      // top_<dim>: Str
	ListValue                        // <dim>_top: List
)

// Value is a referenced name and the value it had.
type Value struct {
	// Name is as written in the rule: rfm_monetary,
	// decile(purchase_propensity), top_category_root, category_root_top.
	Name string
	Kind ValueKind
	// Missing: the input had no value (an absent score, an empty
	// affinity list for top_<dim>). Lists are never missing, only empty.
	Missing bool
	Num     float64
	Str     string
	List    []string
}

// String formats the value as name = value.
func (v Value) String() string {
	var b strings.Builder
	b.WriteString(v.Name)
	b.WriteString(" = ")
	switch {
	case v.Missing:
		b.WriteString("missing")
	case v.Kind == StringValue:
		b.WriteString(strconv.Quote(v.Str))
	case v.Kind == ListValue:
		b.WriteByte('[')
		for i, s := range v.List {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(s))
		}
		b.WriteByte(']')
	default:
		b.WriteString(strconv.FormatFloat(v.Num, 'g', -1, 64))
	}
	return b.String()
}

// node is a parsed rule expression.
type node interface {
	eval(in Input) Truth
	// crossings appends the offsets, in days from now, at which this
	// predicate may change value if clocks advance and nothing else
	// changes. Offsets are ≥ 0.
	crossings(in Input, dst []float64) []float64
}

type andNode []node

func (n andNode) eval(in Input) Truth {
	out := True
	for _, x := range n {
		switch x.eval(in) {
		case False:
			return False
		case Unknown:
			out = Unknown
		}
	}
	return out
}

func (n andNode) crossings(in Input, dst []float64) []float64 {
	for _, x := range n {
		dst = x.crossings(in, dst)
	}
	return dst
}

type orNode []node

func (n orNode) eval(in Input) Truth {
	out := False
	for _, x := range n {
		switch x.eval(in) {
		case True:
			return True
		case Unknown:
			out = Unknown
		}
	}
	return out
}

func (n orNode) crossings(in Input, dst []float64) []float64 {
	for _, x := range n {
		dst = x.crossings(in, dst)
	}
	return dst
}

type notNode struct{ x node }

func (n notNode) eval(in Input) Truth {
	switch n.x.eval(in) {
	case True:
		return False
	case False:
		return True
	}
	return Unknown
}

func (n notNode) crossings(in Input, dst []float64) []float64 { return n.x.crossings(in, dst) }

func (o *operand) number(in Input) (float64, bool) {
	switch {
	case o.lit:
		return o.num, true
	case o.src == srcDecile:
		d, ok := in.Decile(o.name)
		return float64(d), ok
	}
	v, ok := in.Value(o.name)
	if !ok || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// slope is how fast the operand grows per day with nothing happening: 1 for
// a started clock (a clock below zero, such as days_since_last_purchase = −1
// for a user who never bought, has not started), else 0.
func (o *operand) slope(v float64) float64 {
	if o.clock && !o.lit && v >= 0 {
		return 1
	}
	return 0
}

func (o *operand) text(in Input) (string, bool) {
	if o.lit {
		return o.str, true
	}
	t := in.Top(o.name)
	if len(t) == 0 {
		return "", false
	}
	return t[0], true
}

func compare(op cmpOp, a, b float64) bool {
	switch op {
	case opLT:
		return a < b
	case opLE:
		return a <= b
	case opGT:
		return a > b
	case opGE:
		return a >= b
	case opEQ:
		return a == b
	}
	return a != b
}

type cmpNode struct {
	op   cmpOp
	l, r operand
}

func (n *cmpNode) eval(in Input) Truth {
	a, ok := n.l.number(in)
	if !ok {
		return Unknown
	}
	b, ok := n.r.number(in)
	if !ok {
		return Unknown
	}
	return truth(compare(n.op, a, b))
}

func (n *cmpNode) crossings(in Input, dst []float64) []float64 {
	return crossing(in, &n.l, &n.r, dst)
}

// crossing appends the offset at which l(t) = l0 + sl·t meets
// r(t) = r0 + sr·t, if that is now or later.
func crossing(in Input, l, r *operand, dst []float64) []float64 {
	a, ok := l.number(in)
	if !ok {
		return dst
	}
	b, ok := r.number(in)
	if !ok {
		return dst
	}
	sa, sb := l.slope(a), r.slope(b)
	if sa == sb {
		return dst
	}
	t := (b - a) / (sa - sb)
	if t >= 0 && !math.IsInf(t, 0) && !math.IsNaN(t) {
		dst = append(dst, t)
	}
	return dst
}

type betweenNode struct{ x, lo, hi operand }

func (n *betweenNode) eval(in Input) Truth {
	x, ok := n.x.number(in)
	if !ok {
		return Unknown
	}
	lo, ok := n.lo.number(in)
	if !ok {
		return Unknown
	}
	hi, ok := n.hi.number(in)
	if !ok {
		return Unknown
	}
	return truth(lo <= x && x <= hi)
}

func (n *betweenNode) crossings(in Input, dst []float64) []float64 {
	dst = crossing(in, &n.x, &n.lo, dst)
	return crossing(in, &n.x, &n.hi, dst)
}

type strCmpNode struct {
	neg  bool
	l, r operand
}

func (n *strCmpNode) eval(in Input) Truth {
	a, ok := n.l.text(in)
	if !ok {
		return Unknown
	}
	b, ok := n.r.text(in)
	if !ok {
		return Unknown
	}
	return truth((a == b) != n.neg)
}

func (n *strCmpNode) crossings(_ Input, dst []float64) []float64 { return dst }

type inNode struct {
	neg  bool
	s    operand
	list operand
}

func (n *inNode) eval(in Input) Truth {
	s, ok := n.s.text(in)
	if !ok {
		return Unknown
	}
	return truth(slices.Contains(in.Top(n.list.name), s) != n.neg)
}

func (n *inNode) crossings(_ Input, dst []float64) []float64 { return dst }
