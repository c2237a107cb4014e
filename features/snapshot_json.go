package features

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// sortedDefNames are the names of Defs in byte order: the order in which
// encoding/json writes the keys of a Features map; sortedDefKeys are the
// same names encoded as JSON object keys (quoted, with the colon).
var sortedDefNames, sortedDefKeys = func() ([]string, [][]byte) {
	names := make([]string, len(Defs))
	for i, d := range Defs {
		names[i] = d.Name
	}
	slices.Sort(names)
	keys := make([][]byte, len(names))
	for i, n := range names {
		keys[i] = append(appendJSONString(nil, n), ':')
	}
	return names, keys
}()

// appendJSON appends the snapshot's JSON encoding: byte for byte what
// json.Marshal(s) writes (same field order, omitempty rules, sorted map
// keys, float formatting and string escaping), without reflection. The
// benchmark harness found encoding/json's reflective map encoding (key
// sorting through reflect.Value) to be half of the ingester's CPU.
func (s *Snapshot) appendJSON(b []byte) ([]byte, error) {
	b, err := s.appendJSONHead(b)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"features":`...)
	if b, err = appendJSONFeatures(b, s.Features); err != nil {
		return nil, err
	}
	if len(s.Tokens) > 0 {
		b = append(b, `,"tokens":{`...)
		keys := make([]string, 0, len(s.Tokens))
		for k := range s.Tokens {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			list := s.Tokens[k]
			if list == nil {
				b = append(b, "null"...)
				continue
			}
			b = append(b, '[')
			for j, t := range list {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, t)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = appendJSONRecent(b, s.Recent)
	return s.appendJSONTail(b)
}

// appendJSONHead writes the snapshot's fields before "features", from the
// opening brace on.
func (s *Snapshot) appendJSONHead(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(s.Version), 10)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, s.ID)
	b = append(b, `,"user_id":`...)
	b = appendJSONString(b, s.User)
	b = append(b, `,"ts":`...)
	if b, err = appendJSONTime(b, s.TS); err != nil {
		return nil, err
	}
	b = append(b, `,"type":`...)
	b = appendJSONString(b, s.Type)
	if s.ItemID != "" {
		b = append(b, `,"item_id":`...)
		b = appendJSONString(b, s.ItemID)
	}
	if s.Category != "" {
		b = append(b, `,"category":`...)
		b = appendJSONString(b, s.Category)
	}
	if s.Brand != "" {
		b = append(b, `,"brand":`...)
		b = appendJSONString(b, s.Brand)
	}
	if s.Price != 0 {
		b = append(b, `,"price":`...)
		if b, err = appendJSONFloat(b, s.Price); err != nil {
			return nil, err
		}
	}
	if s.Amount != 0 {
		b = append(b, `,"amount":`...)
		if b, err = appendJSONFloat(b, s.Amount); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendJSONTail writes the snapshot's fields after "recent_items" and
// closes the object.
func (s *Snapshot) appendJSONTail(b []byte) ([]byte, error) {
	var err error
	if s.AdsOff {
		b = append(b, `,"ads_off":true`...)
	}
	if s.ProfilingOff {
		b = append(b, `,"profiling_off":true`...)
	}
	b = append(b, `,"source":{"topic":`...)
	b = appendJSONString(b, s.Source.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(s.Source.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, s.Source.Offset, 10)
	b = append(b, `,"appended":`...)
	if b, err = appendJSONTime(b, s.Source.Appended); err != nil {
		return nil, err
	}
	return append(b, "}}"...), nil
}

// appendJSONRecent writes the recent_items field unless list is empty.
func appendJSONRecent(b []byte, list []string) []byte {
	if len(list) == 0 {
		return b
	}
	b = append(b, `,"recent_items":[`...)
	for i, x := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, x)
	}
	return append(b, ']')
}

// appendJSONFeatures writes m with its keys sorted, as encoding/json does.
func appendJSONFeatures(b []byte, m map[string]float64) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '{')
	mark := len(b)
	first := true
	write := func(key []byte, k string, v float64) error {
		if !first {
			b = append(b, ',')
		}
		first = false
		if key != nil {
			b = append(b, key...)
		} else {
			b = appendJSONString(b, k)
			b = append(b, ':')
		}
		var err error
		b, err = appendJSONFloat(b, v)
		return err
	}
	// The usual map holds exactly the Defs names.
	found := 0
	for i, k := range sortedDefNames {
		if v, ok := m[k]; ok {
			found++
			if err := write(sortedDefKeys[i], k, v); err != nil {
				return nil, err
			}
		}
	}
	if found != len(m) {
		// Other names: start again with every key sorted.
		b, first = b[:mark], true
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if err := write(nil, k, m[k]); err != nil {
				return nil, err
			}
		}
	}
	return append(b, '}'), nil
}

// appendJSONFloat formats f as encoding/json formats a float64.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if fastInt(f) {
		// Most features are counts: skip the shortest-digits search.
		return strconv.AppendInt(b, int64(f), 10), nil
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		// json.Marshal's error, for the same input.
		_, err := json.Marshal(f)
		return nil, err
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json does.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendJSONTime writes t as time.Time.MarshalJSON does.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		_, err = json.Marshal(t) // the error json.Marshal reports
		return nil, err
	}
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as encoding/json writes a string (HTML-safe
// escaping, invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
