package segment

import (
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/streamprofile/streamprofile/features"
)

// The model scores a rule may reference by default (DefaultNames). The
// first four are probabilities in [0, 1]; expected_purchases_90d is a count
// and clv_90d a currency amount.
const (
	ScorePurchasePropensity = "purchase_propensity"
	ScoreRepeatPurchase90d  = "repeat_purchase_90d"
	ScoreChurnRisk          = "churn_risk"
	ScorePAlive             = "p_alive"
	ScoreExpectedPurchases  = "expected_purchases_90d"
	ScoreCLV90d             = "clv_90d"
)

// ScoreNames returns the default score names, in the order above.
func ScoreNames() []string {
	return []string{ScorePurchasePropensity, ScoreRepeatPurchase90d, ScoreChurnRisk,
		ScorePAlive, ScoreExpectedPurchases, ScoreCLV90d}
}

// Names is the vocabulary of rules: what a catalogue may reference. A rule
// naming anything else is rejected when the catalogue is loaded, so a typo
// never silently yields an empty segment. Every name must match
// [a-z_][a-z0-9_]* and not be a keyword.
type Names struct {
	// Values are the numeric names rules compare: features and scores,
	// read with Input.Value.
	Values []string
	// Deciles are the names decile(...) accepts, read with Input.Decile:
	// scores whose distribution across users is tracked.
	Deciles []string
	// Dims are the affinity dimensions, read with Input.Top. Each dimension
	// d adds two names: top_<d>, the name of its first entry (a string),
	// and <d>_top, the whole ranked list (for "x" in <d>_top).
	Dims []string
	// Clocks are the Values measured in days that grow by one per day of
	// event time while nothing happens (days since an event, tenure). Only
	// they may be compared with duration literals, and NextCheck
	// extrapolates them. Every clock must be a Value.
	Clocks []string
}

// DefaultNames returns the names of every feature in features.Defs and of
// the scores in ScoreNames as Values, the scores as Deciles, features.Dims
// as Dims, and as Clocks the values named days_since_* and tenure_days
// (days_since_last_seen, days_since_last_purchase, tenure_days).
func DefaultNames() Names {
	var n Names
	for _, d := range features.Defs {
		n.Values = append(n.Values, d.Name)
	}
	n.Values = append(n.Values, ScoreNames()...)
	n.Deciles = ScoreNames()
	n.Dims = slices.Clone(features.Dims[:])
	for _, v := range n.Values {
		if strings.HasPrefix(v, "days_since_") || v == "tenure_days" {
			n.Clocks = append(n.Clocks, v)
		}
	}
	return n
}

func (n Names) empty() bool {
	return len(n.Values) == 0 && len(n.Deciles) == 0 && len(n.Dims) == 0 && len(n.Clocks) == 0
}

// Validate reports whether the names are usable: well-formed, not keywords,
// unique among the identifiers a rule can write (Values, top_<dim>,
// <dim>_top), and every Clock a Value.
func (n Names) Validate() error {
	_, err := n.compile()
	return err
}

// identKind is what an identifier in a rule refers to.
type identKind uint8

const (
	identValue identKind = iota + 1 // a number from Input.Value
	identTop                        // top_<dim>: a string
	identList                       // <dim>_top: a list of strings
)

type ident struct {
	kind  identKind
	name  string // the value name or the dimension
	clock bool
}

// vocab is a compiled Names.
type vocab struct {
	idents  map[string]ident
	deciles map[string]bool
}

func (n Names) compile() (*vocab, error) {
	v := &vocab{idents: map[string]ident{}, deciles: map[string]bool{}}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrNames}, args...)...)
	}
	add := func(name string, id ident) error {
		if !validIdent(name) {
			return bad("%q is not a valid name ([a-z_][a-z0-9_]*, at most %d bytes, not a keyword)", name, MaxNameLen)
		}
		if _, dup := v.idents[name]; dup {
			return bad("%q is defined twice", name)
		}
		v.idents[name] = id
		return nil
	}
	for _, name := range n.Values {
		if err := add(name, ident{kind: identValue, name: name}); err != nil {
			return nil, err
		}
	}
	for _, d := range n.Dims {
		if !validIdent(d) {
			return nil, bad("dimension %q is not a valid name", d)
		}
		if err := add("top_"+d, ident{kind: identTop, name: d}); err != nil {
			return nil, err
		}
		if err := add(d+"_top", ident{kind: identList, name: d}); err != nil {
			return nil, err
		}
	}
	for _, c := range n.Clocks {
		id, ok := v.idents[c]
		if !ok || id.kind != identValue {
			return nil, bad("clock %q is not one of Values", c)
		}
		id.clock = true
		v.idents[c] = id
	}
	for _, d := range n.Deciles {
		if !validIdent(d) {
			return nil, bad("decile name %q is not a valid name", d)
		}
		if v.deciles[d] {
			return nil, bad("decile name %q is listed twice", d)
		}
		v.deciles[d] = true
	}
	return v, nil
}

// isKeyword reports whether s is reserved by the rule language.
func isKeyword(s string) bool {
	switch s {
	case "and", "or", "not", "in", "between", "decile":
		return true
	}
	return false
}

func validIdent(s string) bool {
	if s == "" || len(s) > MaxNameLen || isKeyword(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// validSegmentName: [a-z0-9_]+, at most MaxNameLen bytes.
func validSegmentName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// suggest returns the candidate closest to s by edit distance (the first
// in lexical order among equals) if it is close enough to be a likely
// typo: at most max(1, len(s)/3) edits.
func suggest(s string, candidates iter.Seq[string]) string {
	best, bestD := "", max(1, len(s)/3)+1
	for c := range candidates {
		if d := editDistance(s, c); d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
