package segment

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tokKind classifies a token.
type tokKind uint8

const (
	tokEOF      tokKind = iota
	tokIdent            // a name or keyword
	tokNumber           // a number: num
	tokDuration         // a duration: num in days
	tokString           // a quoted string: str
	tokLParen           // (
	tokRParen           // )
	tokCmp              // a comparison operator: op
)

// cmpOp is a comparison operator.
type cmpOp uint8

const (
	opLT cmpOp = iota + 1
	opLE
	opGT
	opGE
	opEQ
	opNE
)

func (o cmpOp) String() string {
	switch o {
	case opLT:
		return "<"
	case opLE:
		return "<="
	case opGT:
		return ">"
	case opGE:
		return ">="
	case opEQ:
		return "=="
	case opNE:
		return "!="
	}
	return "?"
}

type token struct {
	kind     tokKind
	pos, end int // byte offsets in the rule
	text     string
	num      float64
	str      string
	op       cmpOp
}

// describe names the token for error messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of rule"
	case tokIdent:
		if isKeyword(t.text) {
			return "keyword " + strconv.Quote(t.text)
		}
		return "name " + strconv.Quote(t.text)
	case tokString:
		return "string " + t.text
	case tokNumber, tokDuration:
		return "number " + t.text
	}
	return strconv.Quote(t.text)
}

// durationUnitDays is the length of a duration unit in days.
func durationUnitDays(unit string) (float64, bool) {
	switch unit {
	case "s":
		return 1.0 / 86400, true
	case "m":
		return 1.0 / 1440, true
	case "h":
		return 1.0 / 24, true
	case "d":
		return 1, true
	case "w":
		return 7, true
	}
	return 0, false
}

// parser is a recursive-descent parser over an on-demand lexer.
type parser struct {
	src   string
	pos   int // lexer position: start of the next token
	tok   token
	v     *vocab
	depth int
	refs  []ref
}

func (p *parser) errAt(pos int, sentinel error, format string, args ...any) *Error {
	return &Error{RuleColumn: runeColumn(p.src, pos), Err: sentinel, Msg: fmt.Sprintf(format, args...)}
}

// runeColumn converts a byte offset to a 1-based character column.
func runeColumn(s string, off int) int {
	off = min(max(off, 0), len(s))
	return utf8.RuneCountInString(s[:off]) + 1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isLetter(c byte) bool {
	return isLower(c) || c >= 'A' && c <= 'Z'
}

// next advances to the next token.
func (p *parser) next() error {
	s := p.src
	i := p.pos
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	t := token{pos: i}
	if i >= len(s) {
		t.kind, t.end = tokEOF, i
		p.tok, p.pos = t, i
		return nil
	}
	c := s[i]
	switch {
	case c == '(' || c == ')':
		t.kind = tokLParen
		if c == ')' {
			t.kind = tokRParen
		}
		t.end = i + 1
	case c == '<' || c == '>' || c == '=' || c == '!':
		two := i+1 < len(s) && s[i+1] == '='
		t.kind, t.end = tokCmp, i+1
		switch {
		case c == '<' && two:
			t.op, t.end = opLE, i+2
		case c == '<':
			t.op = opLT
		case c == '>' && two:
			t.op, t.end = opGE, i+2
		case c == '>':
			t.op = opGT
		case c == '=' && two:
			t.op, t.end = opEQ, i+2
		case c == '!' && two:
			t.op, t.end = opNE, i+2
		case c == '=':
			return p.errAt(i, ErrSyntax, "unexpected '=': use == to test equality")
		default:
			return p.errAt(i, ErrSyntax, "unexpected '!': use != to test inequality or not to negate")
		}
	case c == '"' || c == '\'':
		if err := p.lexString(&t); err != nil {
			return err
		}
	case isDigit(c) || c == '-' && i+1 < len(s) && isDigit(s[i+1]):
		if err := p.lexNumber(&t); err != nil {
			return err
		}
	case c == '_' || isLetter(c):
		j := i
		for j < len(s) && (s[j] == '_' || isLetter(s[j]) || isDigit(s[j])) {
			j++
		}
		t.kind, t.end = tokIdent, j
		if j < len(s) && s[j] >= utf8.RuneSelf {
			r, _ := utf8.DecodeRuneInString(s[j:])
			if r == utf8.RuneError {
				return p.errAt(j, ErrSyntax, "invalid UTF-8")
			}
			return p.errAt(j, ErrSyntax, "unexpected character %q", r)
		}
		for k := i; k < j; k++ {
			if s[k] >= 'A' && s[k] <= 'Z' {
				return p.errAt(i, ErrSyntax, "name %q has upper-case letters: names and keywords are lower case", s[i:j])
			}
		}
	default:
		r, _ := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError {
			return p.errAt(i, ErrSyntax, "invalid UTF-8")
		}
		if c == '-' {
			return p.errAt(i, ErrSyntax, "unexpected '-': rules have no arithmetic; a negative number is written -1")
		}
		if c == '.' {
			return p.errAt(i, ErrSyntax, "unexpected '.': a number starts with a digit (0.5, not .5)")
		}
		return p.errAt(i, ErrSyntax, "unexpected character %q", r)
	}
	t.text = s[t.pos:t.end]
	p.tok, p.pos = t, t.end
	return nil
}

func (p *parser) lexString(t *token) error {
	s, q := p.src, p.src[t.pos]
	var b strings.Builder
	for j := t.pos + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == q:
			t.kind, t.end, t.str = tokString, j+1, b.String()
			if !utf8.ValidString(t.str) {
				return p.errAt(t.pos, ErrSyntax, "invalid UTF-8 in string")
			}
			return nil
		case c == '\\':
			if j+1 < len(s) && (s[j+1] == q || s[j+1] == '\\') {
				b.WriteByte(s[j+1])
				j++
				continue
			}
			return p.errAt(j, ErrSyntax, "unknown escape in string: only \\%c and \\\\ are allowed", q)
		case c == '\n' || c == '\r':
			return p.errAt(t.pos, ErrSyntax, "unterminated string")
		default:
			b.WriteByte(c)
		}
	}
	return p.errAt(t.pos, ErrSyntax, "unterminated string")
}

func (p *parser) lexNumber(t *token) error {
	s, i := p.src, t.pos
	j := i
	if s[j] == '-' {
		j++
	}
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j < len(s) && s[j] == '.' {
		j++
		if j >= len(s) || !isDigit(s[j]) {
			return p.errAt(t.pos, ErrSyntax, "malformed number %q: a digit must follow '.'", s[i:j])
		}
		for j < len(s) && isDigit(s[j]) {
			j++
		}
	}
	exp := false
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			exp = true
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			j = k
		}
	}
	numEnd := j
	for j < len(s) && (isLetter(s[j]) || s[j] == '_' || isDigit(s[j])) {
		j++
	}
	unit := s[numEnd:j]
	v, err := strconv.ParseFloat(s[i:numEnd], 64)
	if err != nil || math.IsInf(v, 0) {
		return p.errAt(t.pos, ErrSyntax, "number %q out of range", s[i:numEnd])
	}
	t.num, t.end, t.kind = v, j, tokNumber
	if unit == "" {
		return nil
	}
	days, ok := durationUnitDays(unit)
	if !ok || exp {
		return p.errAt(numEnd, ErrSyntax, "invalid suffix %q after number %q: a duration is a number followed by one of s, m, h, d, w (7d, 36h)", unit, s[i:numEnd])
	}
	if v < 0 {
		return p.errAt(t.pos, ErrSyntax, "negative duration %q", s[i:j])
	}
	t.num, t.kind = v*days, tokDuration
	return nil
}

func (p *parser) keyword(k string) bool { return p.tok.kind == tokIdent && p.tok.text == k }

func (p *parser) unexpected(want string) *Error {
	return p.errAt(p.tok.pos, ErrSyntax, "unexpected %s, expected %s", p.tok.describe(), want)
}

// parseRule parses src against the vocabulary.
func parseRule(src string, v *vocab) (*Rule, error) {
	if len(src) > MaxRuleBytes {
		return nil, &Error{Err: ErrTooLarge, Msg: fmt.Sprintf("rule is %d bytes, more than %d", len(src), MaxRuleBytes)}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &Error{RuleColumn: 1, Err: ErrSyntax, Msg: "empty rule"}
	}
	p := &parser{src: src, v: v}
	if err := p.next(); err != nil {
		return nil, err
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		if p.tok.kind == tokRParen {
			return nil, p.errAt(p.tok.pos, ErrSyntax, "unmatched ')'")
		}
		return nil, p.unexpected("and, or or the end of the rule")
	}
	r := &Rule{src: src, root: root, refs: p.refs}
	for _, x := range p.refs {
		if x.clock {
			r.clock = true
		}
	}
	return r, nil
}

// enter guards the nesting depth of parentheses and not.
func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return &Error{RuleColumn: runeColumn(p.src, p.tok.pos), Err: ErrTooLarge, Msg: fmt.Sprintf("rule nested more than %d deep", MaxDepth)}
	}
	return nil
}

func (p *parser) parseOr() (node, error) {
	x, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	if !p.keyword("or") {
		return x, nil
	}
	xs := orNode{x}
	for p.keyword("or") {
		if err := p.next(); err != nil {
			return nil, err
		}
		y, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		xs = append(xs, y)
	}
	return xs, nil
}

func (p *parser) parseAnd() (node, error) {
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if !p.keyword("and") {
		return x, nil
	}
	xs := andNode{x}
	for p.keyword("and") {
		if err := p.next(); err != nil {
			return nil, err
		}
		y, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		xs = append(xs, y)
	}
	return xs, nil
}

func (p *parser) parseUnary() (node, error) {
	if p.keyword("not") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		p.depth--
		return notNode{x}, nil
	}
	if p.tok.kind == tokLParen {
		open := p.tok.pos
		if err := p.enter(); err != nil {
			return nil, err
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tokRParen {
			if p.tok.kind == tokEOF {
				return nil, p.errAt(open, ErrSyntax, "'(' is never closed")
			}
			return nil, p.unexpected("and, or or ')'")
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		p.depth--
		return x, nil
	}
	return p.parsePredicate()
}

// kind of an operand's value.
type valKind uint8

const (
	kindNum valKind = iota + 1
	kindStr
	kindList
)

func (k valKind) String() string {
	switch k {
	case kindNum:
		return "a number"
	case kindStr:
		return "a string"
	}
	return "a list"
}

// operand is a leaf of a predicate.
type operand struct {
	kind     valKind
	lit      bool    // a literal: num or str
	num      float64 // number literal (durations in days)
	str      string  // string literal
	dur      bool    // a duration literal
	ref      int     // index in Rule.refs when not a literal
	src      refSrc
	name     string // value, score or dimension
	clock    bool
	pos, end int
}

func (p *parser) addRef(r ref) int {
	for i, x := range p.refs {
		if x.src == r.src && x.name == r.name {
			return i
		}
	}
	p.refs = append(p.refs, r)
	return len(p.refs) - 1
}

func (p *parser) parseOperand() (operand, error) {
	t := p.tok
	o := operand{pos: t.pos, end: t.end}
	switch t.kind {
	case tokNumber, tokDuration:
		o.kind, o.lit, o.num, o.dur = kindNum, true, t.num, t.kind == tokDuration
	case tokString:
		o.kind, o.lit, o.str = kindStr, true, t.str
	case tokIdent:
		if t.text == "decile" {
			return p.parseDecile()
		}
		if isKeyword(t.text) {
			return o, p.unexpected("a name, number or string")
		}
		id, ok := p.v.idents[t.text]
		if !ok {
			msg := fmt.Sprintf("unknown name %q", t.text)
			if s := suggest(t.text, p.identNames); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return o, p.errAt(t.pos, ErrUnknownName, "%s", msg)
		}
		o.name, o.clock = id.name, id.clock
		switch id.kind {
		case identValue:
			o.kind, o.src = kindNum, srcValue
		case identTop:
			o.kind, o.src = kindStr, srcTop
		default:
			o.kind, o.src = kindList, srcList
		}
		o.ref = p.addRef(ref{src: o.src, name: o.name, label: t.text, clock: o.clock})
	default:
		return o, p.unexpected("a name, number or string")
	}
	return o, p.next()
}

func (p *parser) identNames(yield func(string) bool) {
	for k := range p.v.idents {
		if !yield(k) {
			return
		}
	}
}

func (p *parser) decileNames(yield func(string) bool) {
	for k := range p.v.deciles {
		if !yield(k) {
			return
		}
	}
}

// parseDecile parses decile(name); the current token is "decile".
func (p *parser) parseDecile() (operand, error) {
	o := operand{pos: p.tok.pos, kind: kindNum, src: srcDecile}
	if err := p.next(); err != nil {
		return o, err
	}
	if p.tok.kind != tokLParen {
		return o, p.unexpected("'(' after decile")
	}
	if err := p.next(); err != nil {
		return o, err
	}
	t := p.tok
	if t.kind != tokIdent || isKeyword(t.text) {
		return o, p.unexpected("a score name in decile(...)")
	}
	if !p.v.deciles[t.text] {
		ranked := slices.Sorted(p.decileNames)
		if _, known := p.v.idents[t.text]; known {
			return o, p.errAt(t.pos, ErrType, "decile(%s): %s is not a ranked score (ranked: %s)", t.text, t.text, strings.Join(ranked, ", "))
		}
		msg := fmt.Sprintf("unknown score %q in decile(...)", t.text)
		if s := suggest(t.text, p.decileNames); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return o, p.errAt(t.pos, ErrUnknownName, "%s", msg)
	}
	o.name = t.text
	if err := p.next(); err != nil {
		return o, err
	}
	if p.tok.kind != tokRParen {
		return o, p.unexpected("')' after decile(" + o.name)
	}
	o.end = p.tok.end
	o.ref = p.addRef(ref{src: srcDecile, name: o.name, label: "decile(" + o.name + ")"})
	return o, p.next()
}

func (p *parser) operandText(o operand) string { return p.src[o.pos:o.end] }

func (p *parser) parsePredicate() (node, error) {
	l, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	switch {
	case p.tok.kind == tokCmp:
		opTok := p.tok
		if err := p.next(); err != nil {
			return nil, err
		}
		r, err := p.parseOperand()
		if err != nil {
			return nil, err
		}
		return p.comparison(l, opTok, r)
	case p.keyword("between"):
		return p.parseBetween(l)
	case p.keyword("in") || p.keyword("not"):
		neg := p.keyword("not")
		if neg {
			if err := p.next(); err != nil {
				return nil, err
			}
			if !p.keyword("in") {
				return nil, p.unexpected("in after not")
			}
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		r, err := p.parseOperand()
		if err != nil {
			return nil, err
		}
		if l.kind != kindStr {
			return nil, p.errAt(l.pos, ErrType, "%s is %s: only a string can be tested with in", p.operandText(l), l.kind)
		}
		if r.kind != kindList {
			return nil, p.errAt(r.pos, ErrType, "%s is %s, not a list: in needs a list such as category_top", p.operandText(r), r.kind)
		}
		return &inNode{neg: neg, s: l, list: r}, nil
	}
	switch l.kind {
	case kindStr:
		return nil, p.unexpected("== or != or in after " + p.operandText(l))
	case kindList:
		return nil, p.errAt(l.pos, ErrType, "%s is a list: test it with \"name\" in %s", p.operandText(l), p.operandText(l))
	}
	return nil, p.unexpected("a comparison (< <= > >= == !=) or between after " + p.operandText(l))
}

func (p *parser) comparison(l operand, opTok token, r operand) (node, error) {
	if l.kind == kindList || r.kind == kindList {
		x := l
		if r.kind == kindList {
			x = r
		}
		return nil, p.errAt(x.pos, ErrType, "%s is a list: test it with \"name\" in %s", p.operandText(x), p.operandText(x))
	}
	if l.kind != r.kind {
		return nil, p.errAt(opTok.pos, ErrType, "cannot compare %s (%s) with %s (%s)", p.operandText(l), l.kind, p.operandText(r), r.kind)
	}
	if l.lit && r.lit {
		return nil, p.errAt(l.pos, ErrType, "%s compares two constants", p.src[l.pos:r.end])
	}
	if l.kind == kindStr {
		if opTok.op != opEQ && opTok.op != opNE {
			return nil, p.errAt(opTok.pos, ErrType, "strings can only be compared with == or !=, not %s", opTok.op)
		}
		if l.lit {
			l, r = r, l
		}
		return &strCmpNode{neg: opTok.op == opNE, l: l, r: r}, nil
	}
	if err := p.checkDuration(l, r); err != nil {
		return nil, err
	}
	return &cmpNode{op: opTok.op, l: l, r: r}, nil
}

// checkDuration: a duration literal may only meet a clock.
func (p *parser) checkDuration(x, bound operand) error {
	for _, pair := range [2][2]operand{{x, bound}, {bound, x}} {
		d, other := pair[0], pair[1]
		if d.dur && !other.clock {
			return p.errAt(d.pos, ErrType, "duration %s compared with %s, which is not measured in days (durations are days and only meet clocks such as days_since_last_seen)", p.operandText(d), p.operandText(other))
		}
	}
	return nil
}

func (p *parser) parseBetween(x operand) (node, error) {
	betweenPos := p.tok.pos
	if err := p.next(); err != nil {
		return nil, err
	}
	lo, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	if !p.keyword("and") {
		return nil, p.unexpected("and in between ... and ...")
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	hi, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	for _, o := range [3]operand{x, lo, hi} {
		if o.kind != kindNum {
			return nil, p.errAt(o.pos, ErrType, "between needs numbers, but %s is %s", p.operandText(o), o.kind)
		}
	}
	if x.lit {
		return nil, p.errAt(x.pos, ErrType, "%s between ... compares a constant", p.operandText(x))
	}
	if err := p.checkDuration(x, lo); err != nil {
		return nil, err
	}
	if err := p.checkDuration(x, hi); err != nil {
		return nil, err
	}
	if lo.lit && hi.lit && lo.num > hi.num {
		return nil, p.errAt(betweenPos, ErrType, "empty range: %s is greater than %s", p.operandText(lo), p.operandText(hi))
	}
	return &betweenNode{x: x, lo: lo, hi: hi}, nil
}
