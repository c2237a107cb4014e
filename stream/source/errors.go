package source

import (
	"errors"
	"fmt"
)

// ErrUnknownFormat is returned by ParseFormat, NewReader and Open for a
// format other than the Format constants.
var ErrUnknownFormat = errors.New("source: unknown format")

// ErrBadHeader is returned by a rees46 Reader whose input does not start with
// a header naming every REES46 column. It ends the reader.
var ErrBadHeader = errors.New("source: bad header")

// ErrLineTooLong is the Err of the *LineError for a line longer than
// MaxLineBytes. The rest of that line is skipped.
var ErrLineTooLong = errors.New("source: line too long")

// LineError reports one input line that could not be turned into a valid
// event. The Reader that returned it remains usable: the next call to Next
// continues with the following line.
type LineError struct {
	Line int   // 1-based physical line number
	Err  error // the cause; a *stream.DecodeError when the event failed validation
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }
