package source

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// lineReader splits its input into physical lines (LF, with an optional CR
// before it), numbering them from 1. Lines longer than MaxLineBytes are
// skipped and reported with ErrLineTooLong.
type lineReader struct {
	br   *bufio.Reader
	n    int   // number of the last line returned
	err  error // sticky read error
	buf  []byte
	done bool
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its terminator and its number. The
// slice is only valid until the following call. At the end it returns
// io.EOF; a *LineError wrapping ErrLineTooLong for an overlong line; any
// other error is the underlying reader's and is sticky.
func (l *lineReader) next() ([]byte, int, error) {
	if l.err != nil {
		return nil, l.n, l.err
	}
	if l.done {
		return nil, l.n, io.EOF
	}
	l.buf = l.buf[:0]
	tooLong := false
	for {
		chunk, err := l.br.ReadSlice('\n')
		if !tooLong {
			if len(l.buf)+len(chunk) > MaxLineBytes+2 { // +2: the terminator
				tooLong, l.buf = true, l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			l.done = true
			if len(chunk) == 0 && len(l.buf) == 0 && !tooLong {
				return nil, l.n, io.EOF
			}
		} else if err != nil {
			l.err = fmt.Errorf("source: read line %d: %w", l.n+1, err)
			return nil, l.n, l.err
		}
		l.n++
		if tooLong {
			return nil, l.n, &LineError{Line: l.n, Err: fmt.Errorf("%w (over %d bytes)", ErrLineTooLong, MaxLineBytes)}
		}
		line := bytes.TrimSuffix(l.buf, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > MaxLineBytes {
			return nil, l.n, &LineError{Line: l.n, Err: fmt.Errorf("%w (over %d bytes)", ErrLineTooLong, MaxLineBytes)}
		}
		return line, l.n, nil
	}
}

// errMoney is the cause of a malformed decimal amount.
var errMoney = errors.New("not a decimal amount")

// maxMoneyDigits bounds the integer part of an amount so that its micros fit
// in an int64 with room to spare (the decoder caps prices at 1e9 anyway).
const maxMoneyDigits = 12

// parseMicros parses a plain decimal amount ("12", "-0.5", "35.79", ".25")
// into millionths, rounding digits past the sixth decimal half away from
// zero. Exponents, hex, NaN, Inf, underscores and spaces are rejected.
func parseMicros(s string) (int64, error) {
	orig := s
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" {
		return 0, fmt.Errorf("%q: %w", orig, errMoney)
	}
	if len(intPart) > maxMoneyDigits {
		return 0, fmt.Errorf("%q: %w (more than %d integer digits)", orig, errMoney, maxMoneyDigits)
	}
	var v int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q: %w", orig, errMoney)
		}
		v = v*10 + int64(c-'0')
	}
	for i := 0; i < len(frac); i++ {
		if c := frac[i]; c < '0' || c > '9' {
			return 0, fmt.Errorf("%q: %w", orig, errMoney)
		}
	}
	var f int64
	for i := range 6 {
		f *= 10
		if i < len(frac) {
			f += int64(frac[i] - '0')
		}
	}
	v = v*1_000_000 + f
	if len(frac) > 6 && frac[6] >= '5' {
		v++ // half away from zero: the sign is applied afterwards
	}
	if neg {
		v = -v
	}
	return v, nil
}

// microsToFloat is the float64 nearest to m millionths. Both operands are
// exact in float64 and IEEE division rounds correctly, so for an amount with
// at most 6 decimals this equals strconv.ParseFloat of its text.
func microsToFloat(m int64) float64 { return float64(m) / 1e6 }

// roundDiv is n/d rounded half away from zero, for d > 0.
func roundDiv(n, d int64) int64 {
	if n < 0 {
		return -roundDiv(-n, d)
	}
	q, r := n/d, n%d
	if r >= d-r { // r/d >= 1/2, without overflowing 2r
		q++
	}
	return q
}
