package segment

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors. Every error this package returns wraps one of them, so
// callers can branch with errors.Is; catalogue and rule errors are *Error.
var (
	// ErrSyntax: a rule is not well formed (an unexpected character or
	// token, an unterminated string, a malformed number or duration).
	ErrSyntax = errors.New("segment: syntax error")
	// ErrUnknownName: a rule references a name that is not in Names.
	ErrUnknownName = errors.New("segment: unknown name")
	// ErrType: a rule compares values of different kinds (a string with a
	// number, a duration with a value not measured in days), compares two
	// constants, or uses decile() on a name that is not ranked.
	ErrType = errors.New("segment: type error")
	// ErrInvalid: a catalogue is well-formed YAML but not a valid
	// catalogue (a missing or unknown key, a bad or repeated segment name,
	// a bad min_dwell, an unsupported version).
	ErrInvalid = errors.New("segment: invalid catalogue")
	// ErrYAML: a catalogue file is not YAML.
	ErrYAML = errors.New("segment: malformed YAML")
	// ErrTooLarge: a file, rule, nesting depth or segment count exceeds its
	// limit (MaxFileBytes, MaxRuleBytes, MaxDepth, MaxSegments).
	ErrTooLarge = errors.New("segment: too large")
	// ErrNames: a Names set is invalid (a malformed or repeated name, a
	// clock that is not a value).
	ErrNames = errors.New("segment: invalid names")
	// ErrCorrupt: an encoded Membership is truncated or malformed.
	ErrCorrupt = errors.New("segment: corrupt membership")
	// ErrConfig: a SketchConfig or WatcherConfig field is out of range.
	ErrConfig = errors.New("segment: invalid config")
)

// Error is a catalogue or rule error with its position. It wraps one of
// ErrSyntax, ErrUnknownName, ErrType, ErrInvalid, ErrYAML or ErrTooLarge.
type Error struct {
	// File is the catalogue's name as passed to Parse or Load; empty for
	// ParseRule.
	File string
	// Line and Column are the 1-based position in the file. For an error
	// inside a rule written as a single-line plain or quoted scalar without
	// escapes they point at the offending character itself; otherwise at
	// the start of the YAML node. Zero when unknown (ParseRule, some YAML
	// syntax errors).
	Line, Column int
	// Segment is the name of the segment the error is in, when known.
	Segment string
	// Field is the YAML key the error is in ("name", "rule", "exit_rule",
	// "min_dwell", ...), when there is one.
	Field string
	// RuleColumn is the 1-based position, counted in characters, of the
	// error within the rule text; 0 for errors outside rules.
	RuleColumn int
	// Err is the sentinel.
	Err error
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteByte(':')
				b.WriteString(strconv.Itoa(e.Column))
			}
		}
		b.WriteString(": ")
	}
	if e.Segment != "" {
		b.WriteString("segment ")
		b.WriteString(strconv.Quote(e.Segment))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	if e.RuleColumn > 0 {
		b.WriteString("column ")
		b.WriteString(strconv.Itoa(e.RuleColumn))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }
