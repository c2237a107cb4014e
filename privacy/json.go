package privacy

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// MaskJSON masks every string value of the JSON document raw (object keys
// are kept) and copies everything else byte for byte. It returns raw itself
// when nothing was masked, and ErrInvalidJSON when raw is not valid JSON.
// A masked string is re-encoded with only the escapes JSON requires.
func (m *Masker) MaskJSON(raw []byte) ([]byte, bool, error) {
	if !json.Valid(raw) {
		return nil, false, ErrInvalidJSON
	}
	out, changed := m.maskValidJSON(raw)
	return out, changed, nil
}

// MaskPayload masks a message value of unknown form: as JSON (MaskJSON)
// when it is valid JSON, else as text (MaskString), byte for byte outside
// the masked items. It returns raw itself when nothing was masked.
func (m *Masker) MaskPayload(raw []byte) ([]byte, bool) {
	if json.Valid(raw) {
		return m.maskValidJSON(raw)
	}
	if precheck(m, raw) == 0 {
		return raw, false
	}
	s, changed := m.MaskString(string(raw))
	if !changed {
		return raw, false
	}
	return []byte(s), true
}

// maskValidJSON walks a valid JSON document, masking string values.
func (m *Masker) maskValidJSON(raw []byte) ([]byte, bool) {
	var out []byte // nil until the first change
	last := 0      // raw[last:] is not yet in out
	var stackBuf [32]bool
	stack := stackBuf[:0] // true: object
	expectKey := false
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '{':
			stack = append(stack, true)
			expectKey = true
		case '[':
			stack = append(stack, false)
			expectKey = false
		case '}', ']':
			stack = stack[:len(stack)-1]
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1]
		case ':':
			expectKey = false
		case '"':
			j := stringEnd(raw, i)
			if !expectKey {
				if masked, ok := m.maskJSONString(raw[i : j+1]); ok {
					out = append(out, raw[last:i]...)
					out = append(out, masked...)
					last = j + 1
				}
			}
			i = j
		}
	}
	if out == nil {
		return raw, false
	}
	return append(out, raw[last:]...), true
}

// stringEnd returns the index of the quote closing the string that starts
// at raw[i] (raw is valid JSON).
func stringEnd(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(raw) - 1
}

// maskJSONString masks one JSON string token (quotes included) and returns
// its new encoding when anything was masked.
func (m *Masker) maskJSONString(tok []byte) ([]byte, bool) {
	inner := tok[1 : len(tok)-1]
	var s string
	ok := true
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		if precheck(m, inner) == 0 {
			return nil, false
		}
		s = string(inner)
	} else if s, ok = decodeJSONString(tok); !ok {
		return nil, false // cannot happen for a token of valid JSON
	}
	masked, changed := m.MaskString(s)
	if !changed {
		return nil, false
	}
	return appendJSONString(make([]byte, 0, len(masked)+2), masked), true
}

// decodeJSONString decodes a string token with escapes. It is apart from
// maskJSONString so that only this path pays for the heap-allocated target.
func decodeJSONString(tok []byte) (string, bool) {
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", false
	}
	return s, true
}

const hexDigits = "0123456789abcdef"

// appendJSONString encodes s as a JSON string with only the required
// escapes; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
