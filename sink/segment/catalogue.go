package segment

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits on what a catalogue may hold. They bound the work a bad or hostile
// file can cause.
const (
	// MaxFileBytes is the largest catalogue file.
	MaxFileBytes = 1 << 20
	// MaxSegments is the most segments a catalogue (and a Membership) holds.
	MaxSegments = 1024
	// MaxNameLen is the longest segment, feature or score name, in bytes.
	MaxNameLen = 64
	// MaxRuleBytes is the longest rule.
	MaxRuleBytes = 4096
	// MaxDepth is the deepest nesting of parentheses and not in a rule.
	MaxDepth = 32
	// MaxDwell is the longest min_dwell.
	MaxDwell = 3650 * 24 * time.Hour
	// Version is the catalogue format version this package reads.
	Version = 1
)

// maxErrors is the most errors Parse reports for one file.
const maxErrors = 20

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns a copy of the embedded default catalogue,
// default.yaml.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default parses the embedded default catalogue against DefaultNames.
func Default() (*Catalogue, error) { return Parse("default.yaml", defaultYAML, Config{}) }

// Config configures how a catalogue is parsed.
type Config struct {
	// Names is the vocabulary rules may reference. Default (the zero
	// Names): DefaultNames().
	Names Names
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Names.empty() {
		return nil
	}
	return c.Names.Validate()
}

// Segment is one parsed segment definition.
type Segment struct {
	// Name matches [a-z0-9_]+ and is unique in its catalogue.
	Name string
	// Description is free text for people.
	Description string
	// Rule admits a user: a non-member enters when Rule is true (and
	// ExitRule, if any, is not).
	Rule *Rule
	// ExitRule, when not nil, is the hysteresis rule: a member leaves when
	// it is true (not when it is Unknown). When nil a member leaves when
	// Rule is not true (false or Unknown).
	ExitRule *Rule
	// MinDwell delays exits: no member leaves before MinDwell after
	// entering, in event time. Zero: no delay.
	MinDwell time.Duration
	// TimeRelative asks for NextCheck to schedule re-evaluations when
	// clocks (days_since_*, tenure_days) cross a threshold of Rule or
	// ExitRule.
	TimeRelative bool
	// Line is the segment's line in the catalogue file.
	Line int
}

// decide returns whether a user is a member after evaluating s at nowMs
// (unix milliseconds), given whether it was one and since when.
func (s *Segment) decide(in Input, member bool, enteredMs, nowMs int64) bool {
	if !member {
		return s.Rule.Eval(in) == True && (s.ExitRule == nil || s.ExitRule.Eval(in) != True)
	}
	var exit bool
	if s.ExitRule != nil {
		exit = s.ExitRule.Eval(in) == True
	} else {
		exit = s.Rule.Eval(in) != True
	}
	return !exit || nowMs-enteredMs < s.MinDwell.Milliseconds()
}

// Catalogue is a validated set of segments. It is immutable and safe for
// concurrent use.
type Catalogue struct {
	file   string
	digest [sha256.Size]byte
	segs   []Segment // file order
	sorted []int     // indexes of segs in name order
	v      *vocab
}

// File returns the name the catalogue was parsed under.
func (c *Catalogue) File() string { return c.file }

// Digest returns the hex SHA-256 of the catalogue's source bytes.
func (c *Catalogue) Digest() string { return hex.EncodeToString(c.digest[:]) }

// Len returns the number of segments.
func (c *Catalogue) Len() int { return len(c.segs) }

// Segments returns the segments in file order.
func (c *Catalogue) Segments() []Segment { return slices.Clone(c.segs) }

// Segment returns the named segment.
func (c *Catalogue) Segment(name string) (Segment, bool) {
	i, ok := slices.BinarySearchFunc(c.sorted, name, func(i int, n string) int { return strings.Compare(c.segs[i].Name, n) })
	if !ok {
		return Segment{}, false
	}
	return c.segs[c.sorted[i]], true
}

// Load reads and parses a catalogue file.
func Load(path string, cfg Config) (*Catalogue, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, cfg)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("segment: read %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, &Error{File: path, Err: ErrTooLarge, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileBytes)}
	}
	return data, nil
}

// Parse parses and validates a catalogue. file names it in errors. The
// error is an *Error, or when there are several problems, one *Error per
// problem (at most 20) joined with errors.Join; it wraps ErrNames for a bad
// cfg.Names.
func Parse(file string, data []byte, cfg Config) (*Catalogue, error) {
	names := cfg.Names
	if names.empty() {
		names = DefaultNames()
	}
	v, err := names.compile()
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, &Error{File: file, Err: ErrTooLarge, Msg: fmt.Sprintf("file is %d bytes, more than %d", len(data), MaxFileBytes)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	l := &loader{file: file, data: data, v: v}
	c := l.catalogue(&doc)
	switch len(l.errs) {
	case 0:
	case 1:
		return nil, l.errs[0]
	default:
		return nil, errors.Join(l.errs...)
	}
	c.file, c.digest, c.v = file, sha256.Sum256(data), v
	c.sorted = make([]int, len(c.segs))
	for i := range c.sorted {
		c.sorted[i] = i
	}
	slices.SortFunc(c.sorted, func(a, b int) int { return strings.Compare(c.segs[a].Name, c.segs[b].Name) })
	return c, nil
}

// yamlError converts a yaml.v3 error ("yaml: line 3: ...") to an *Error.
func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file, Err: ErrYAML, Msg: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				e.Line, e.Msg = n, tail
			}
		}
	}
	return e
}

type loader struct {
	file  string
	data  []byte
	lines [][]byte
	v     *vocab
	errs  []error
}

func (l *loader) fail(n *yaml.Node, seg, field string, sentinel error, format string, args ...any) {
	if len(l.errs) >= maxErrors {
		return
	}
	e := &Error{File: l.file, Segment: seg, Field: field, Err: sentinel, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

// deref follows aliases.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; i < 16 && n != nil && n.Kind == yaml.AliasNode; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "empty"
		}
		return "a scalar"
	}
	return "an alias"
}

// segmentKeys are the keys of a segment mapping.
func segmentKeys() []string {
	return []string{"name", "description", "rule", "exit_rule", "min_dwell", "time_relative"}
}

func (l *loader) catalogue(doc *yaml.Node) *Catalogue {
	c := &Catalogue{}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		l.errs = append(l.errs, &Error{File: l.file, Err: ErrInvalid, Msg: "empty file: expected version and segments"})
		return c
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		l.fail(root, "", "", ErrInvalid, "expected a mapping with version and segments, found %s", kindName(root))
		return c
	}
	var version, segments *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i], deref(root.Content[i+1])
		switch k.Value {
		case "version", "segments":
			if k.Value == "version" && version != nil || k.Value == "segments" && segments != nil {
				l.fail(k, "", "", ErrInvalid, "key %q repeated", k.Value)
				continue
			}
			if k.Value == "version" {
				version = val
			} else {
				segments = val
			}
		default:
			l.fail(k, "", "", ErrInvalid, "unknown key %q (want version and segments)", k.Value)
		}
	}
	switch {
	case version == nil:
		l.fail(root, "", "", ErrInvalid, "missing version (want version: %d)", Version)
	case version.Kind != yaml.ScalarNode || version.Value != strconv.Itoa(Version):
		l.fail(version, "", "version", ErrInvalid, "unsupported version %q: this build reads version %d", version.Value, Version)
	}
	if segments == nil {
		l.fail(root, "", "", ErrInvalid, "missing segments")
		return c
	}
	if isNull(segments) {
		return c
	}
	if segments.Kind != yaml.SequenceNode {
		l.fail(segments, "", "segments", ErrInvalid, "expected a list of segments, found %s", kindName(segments))
		return c
	}
	if len(segments.Content) > MaxSegments {
		l.errs = append(l.errs, &Error{File: l.file, Line: segments.Line, Column: segments.Column, Field: "segments",
			Err: ErrTooLarge, Msg: fmt.Sprintf("%d segments, more than %d", len(segments.Content), MaxSegments)})
		return c
	}
	seen := map[string]int{}
	for i, item := range segments.Content {
		s, ok := l.segment(i, deref(item))
		if !ok {
			continue
		}
		if line, dup := seen[s.Name]; dup {
			l.fail(item, s.Name, "name", ErrInvalid, "segment name %q already used at line %d", s.Name, line)
			continue
		}
		seen[s.Name] = s.Line
		c.segs = append(c.segs, s)
	}
	return c
}

func (l *loader) segment(i int, n *yaml.Node) (Segment, bool) {
	s := Segment{Line: n.Line}
	label := fmt.Sprintf("#%d", i+1) // until the name is known
	if n.Kind != yaml.MappingNode {
		l.fail(n, label, "", ErrInvalid, "expected a mapping with name and rule, found %s", kindName(n))
		return s, false
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		if k, val := n.Content[j], deref(n.Content[j+1]); k.Value == "name" && val.Kind == yaml.ScalarNode && validSegmentName(val.Value) {
			label = val.Value
			break
		}
	}
	ok := true
	fields := map[string]*yaml.Node{}
	keys := map[string]*yaml.Node{}
	known := segmentKeys()
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, val := n.Content[j], deref(n.Content[j+1])
		switch {
		case !slices.Contains(known, k.Value):
			msg := fmt.Sprintf("unknown key %q (want %s)", k.Value, strings.Join(known, ", "))
			if sg := suggest(k.Value, slices.Values(known)); sg != "" {
				msg = fmt.Sprintf("unknown key %q (did you mean %q?)", k.Value, sg)
			}
			l.fail(k, label, "", ErrInvalid, "%s", msg)
			ok = false
		case fields[k.Value] != nil:
			l.fail(k, label, "", ErrInvalid, "key %q repeated", k.Value)
			ok = false
		default:
			fields[k.Value], keys[k.Value] = val, k
		}
	}
	bad := func(field string, format string, args ...any) {
		l.fail(fields[field], label, field, ErrInvalid, format, args...)
		ok = false
	}
	// scalar returns the text of a scalar field; present is false when the
	// field is absent, null or not a scalar (reported).
	scalar := func(field string) (text string, present bool) {
		f := fields[field]
		if f == nil || isNull(f) {
			return "", false
		}
		if f.Kind != yaml.ScalarNode {
			bad(field, "expected a scalar, found %s", kindName(f))
			return "", false
		}
		return f.Value, true
	}
	required := func(field string) (string, bool) {
		text, has := scalar(field)
		if !has && (fields[field] == nil || isNull(fields[field])) {
			at := n
			if keys[field] != nil {
				at = keys[field]
			}
			l.fail(at, label, "", ErrInvalid, "missing %s", field)
			ok = false
		}
		return text, has
	}
	if name, has := required("name"); has {
		if validSegmentName(name) {
			s.Name = name
		} else {
			bad("name", "invalid name %q: use lower-case letters, digits and _ (at most %d bytes)", name, MaxNameLen)
		}
	}
	s.Description, _ = scalar("description")
	if text, has := required("rule"); has {
		if s.Rule = l.rule(fields["rule"], label, "rule", text); s.Rule == nil {
			ok = false
		}
	}
	if text, has := scalar("exit_rule"); has {
		if s.ExitRule = l.rule(fields["exit_rule"], label, "exit_rule", text); s.ExitRule == nil {
			ok = false
		}
	}
	if text, has := scalar("min_dwell"); has {
		d, err := parseDwell(text)
		if err != nil {
			bad("min_dwell", "%v", err)
		}
		s.MinDwell = d
	}
	if f := fields["time_relative"]; f != nil && !isNull(f) {
		if f.Kind != yaml.ScalarNode || f.Tag != "!!bool" || f.Decode(&s.TimeRelative) != nil {
			bad("time_relative", "expected true or false, found %q", f.Value)
		}
	}
	if ok && s.TimeRelative && !s.Rule.UsesClock() && (s.ExitRule == nil || !s.ExitRule.UsesClock()) {
		bad("time_relative", "time_relative is set but no rule references a clock (%s)", strings.Join(l.clockNames(), ", "))
	}
	return s, ok
}

func (l *loader) clockNames() []string {
	var out []string
	for name, id := range l.v.idents {
		if id.clock {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// rule parses one rule and reports its error at the offending character.
func (l *loader) rule(n *yaml.Node, seg, field, text string) *Rule {
	r, err := parseRule(text, l.v)
	if err == nil {
		return r
	}
	var e *Error
	if !errors.As(err, &e) { // cannot happen: parseRule returns *Error
		e = &Error{Err: ErrSyntax, Msg: err.Error()}
	}
	e.File, e.Segment, e.Field = l.file, seg, field
	e.Line, e.Column = l.rulePos(n, e.RuleColumn)
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, e)
	}
	return nil
}

// rulePos maps a column within a rule to a file position: exact when the
// rule is a single-line plain or quoted scalar whose source text is its
// value (no escapes), else the start of the scalar.
func (l *loader) rulePos(n *yaml.Node, ruleCol int) (line, col int) {
	line, col = n.Line, n.Column
	if ruleCol <= 0 || strings.ContainsAny(n.Value, "\r\n") {
		return line, col
	}
	if l.lines == nil {
		l.lines = bytes.Split(l.data, []byte("\n"))
	}
	if line < 1 || line > len(l.lines) {
		return line, col
	}
	src := l.lines[line-1]
	off := 0
	for c := 1; c < col && off < len(src); c++ {
		_, size := utf8.DecodeRune(src[off:])
		off += size
	}
	rest := string(src[off:])
	switch {
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle|yaml.FlowStyle) == 0:
		if strings.HasPrefix(rest, n.Value) {
			return line, col + ruleCol - 1
		}
	case n.Style&yaml.DoubleQuotedStyle != 0:
		if strings.HasPrefix(rest, `"`+n.Value+`"`) && !strings.Contains(n.Value, `\`) {
			return line, col + ruleCol
		}
	case n.Style&yaml.SingleQuotedStyle != 0:
		if strings.HasPrefix(rest, `'`+n.Value+`'`) && !strings.Contains(n.Value, `'`) {
			return line, col + ruleCol
		}
	}
	return line, col
}

// parseDwell parses a min_dwell: a number with one unit of s, m, h, d or w
// (1.5d, 36h), or a Go duration (1h30m, 90s), between 0 and MaxDwell.
func parseDwell(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if i := strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') }); i > 0 && i == len(s)-1 {
		days, ok := durationUnitDays(s[i:])
		v, err := strconv.ParseFloat(s[:i], 64)
		if !ok || err != nil {
			return 0, fmt.Errorf("invalid duration %q: use a number and one of s, m, h, d, w (24h, 7d)", s)
		}
		x := v * days * float64(24*time.Hour)
		if x > float64(MaxDwell) {
			return 0, fmt.Errorf("duration %q is longer than %d days", s, MaxDwell/(24*time.Hour))
		}
		d = time.Duration(math.Round(x))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("invalid duration %q: use a number and one of s, m, h, d, w (24h, 7d)", s)
		}
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("negative duration %q", s)
	case d > MaxDwell:
		return 0, fmt.Errorf("duration %q is longer than %d days", s, MaxDwell/(24*time.Hour))
	}
	return d, nil
}
