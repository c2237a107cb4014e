package stream

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// The fields of wireEvent, as bit positions of parseFast's seen set.
const (
	fSchema = iota
	fEventID
	fType
	fUserID
	fAnonymousID
	fTS
	fSessionID
	fItemID
	fCategory
	fBrand
	fPrice
	fQuantity
	fCurrency
	fQuery
	fText
	fConsent
	numWireFields
)

// wireNames are the JSON names of wireEvent's fields, by field.
var wireNames = [numWireFields]string{
	fSchema: "schema", fEventID: "event_id", fType: "type", fUserID: "user_id", fAnonymousID: "anonymous_id",
	fTS: "ts", fSessionID: "session_id", fItemID: "item_id", fCategory: "category", fBrand: "brand",
	fPrice: "price", fQuantity: "quantity", fCurrency: "currency", fQuery: "query", fText: "text", fConsent: "consent",
}

// wireField returns the field whose JSON name is exactly key, or -1.
func wireField(key []byte) int {
	switch string(key) {
	case "schema":
		return fSchema
	case "event_id":
		return fEventID
	case "type":
		return fType
	case "user_id":
		return fUserID
	case "anonymous_id":
		return fAnonymousID
	case "ts":
		return fTS
	case "session_id":
		return fSessionID
	case "item_id":
		return fItemID
	case "category":
		return fCategory
	case "brand":
		return fBrand
	case "price":
		return fPrice
	case "quantity":
		return fQuantity
	case "currency":
		return fCurrency
	case "query":
		return fQuery
	case "text":
		return fText
	case "consent":
		return fConsent
	}
	return -1
}

// parseFast fills the zero w from b exactly as json.Unmarshal(b, w) would
// (except that the pointer fields stay nil: the numbers are in schemaV,
// priceV and quantityV, present when their bits are set in numbers),
// for the shape nearly every event has: one flat JSON object whose known
// keys appear once, spelled exactly, with values of the right JSON type
// and strings without escapes. It reports false, leaving w in an
// unspecified state, for anything else (including every input
// json.Unmarshal rejects), and the caller then runs json.Unmarshal, so
// errors and corner cases (case-insensitive keys, duplicates, escapes,
// invalid UTF-8, nested values, null consent) keep encoding/json's
// behaviour. It is one pass with no validation pass before it.
func (w *wireEvent) parseFast(b []byte) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	var seen uint32
	for {
		// Key: ASCII without escapes.
		if i >= len(b) || b[i] != '"' {
			return false
		}
		j := i + 1
		for j < len(b) && b[j] != '"' {
			if c := b[j]; c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				return false
			}
			j++
		}
		if j >= len(b) {
			return false
		}
		key := b[i+1 : j]
		f := wireField(key)
		if f < 0 && foldsToWireField(key) {
			return false // encoding/json matches keys case-insensitively
		}
		if f >= 0 {
			if seen&(1<<f) != 0 {
				return false // a repeated key: the last one wins
			}
			seen |= 1 << f
		}
		i = skipSpace(b, j+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return false
		}
		// Value.
		switch c := b[i]; {
		case c == '"':
			s, end, ok := scanPlainString(b, i)
			if !ok {
				return false
			}
			i = end
			if f >= 0 && !w.setString(f, s) {
				return false // a string for a number or for consent
			}
		case c == 'n':
			if !bytes.HasPrefix(b[i:], []byte("null")) || f == fConsent {
				return false
			}
			// null leaves strings unchanged and pointers nil, as they are.
			i += len("null")
		case c == 't' || c == 'f':
			lit := "true"
			if c == 'f' {
				lit = "false"
			}
			if !bytes.HasPrefix(b[i:], []byte(lit)) || f >= 0 {
				return false // no known field is a boolean
			}
			i += len(lit)
		case c == '-' || (c >= '0' && c <= '9'):
			end, isInt, ok := scanNumber(b, i)
			if !ok {
				return false
			}
			num := b[i:end]
			i = end
			switch f {
			case -1:
			case fSchema, fQuantity:
				if !isInt || len(num) > 18 {
					return false // a fraction, or possibly out of int range
				}
				n, err := strconv.Atoi(string(num))
				if err != nil {
					return false
				}
				if f == fSchema {
					w.schemaV = n
				} else {
					w.quantityV = n
				}
				w.numbers |= 1 << f
			case fPrice:
				p, err := strconv.ParseFloat(string(num), 64)
				if err != nil {
					return false
				}
				w.priceV = p
				w.numbers |= 1 << f
			default:
				return false // a number for a string field or consent
			}
		default:
			return false // an object or array, or not JSON
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// fastNumbers returns what json.Unmarshal would have set Schema, Price
// and Quantity to, after parseFast: pointers to schemaV, priceV and
// quantityV for the numbers present, nil for the others.
func (w *wireEvent) fastNumbers() (schema *int, price *float64, quantity *int) {
	if w.numbers&(1<<fSchema) != 0 {
		schema = &w.schemaV
	}
	if w.numbers&(1<<fPrice) != 0 {
		price = &w.priceV
	}
	if w.numbers&(1<<fQuantity) != 0 {
		quantity = &w.quantityV
	}
	return schema, price, quantity
}

// setString stores a string value; false when field f is not a string.
func (w *wireEvent) setString(f int, s []byte) bool {
	var dst *string
	switch f {
	case fType:
		w.Type = internType(s)
		return true
	case fEventID:
		dst = &w.EventID
	case fUserID:
		dst = &w.UserID
	case fAnonymousID:
		dst = &w.AnonymousID
	case fTS:
		dst = &w.TS
	case fSessionID:
		dst = &w.SessionID
	case fItemID:
		dst = &w.ItemID
	case fCategory:
		dst = &w.Category
	case fBrand:
		dst = &w.Brand
	case fCurrency:
		dst = &w.Currency
	case fQuery:
		dst = &w.Query
	case fText:
		dst = &w.Text
	default:
		return false
	}
	*dst = string(s)
	return true
}

// internType returns the event type s names, without allocating for the
// schema's types.
func internType(s []byte) EventType {
	switch t := EventType(s); t {
	case TypeView, TypeCart, TypeRemoveFromCart, TypePurchase, TypeSearch, TypeReview, TypeIdentify, TypeConsent:
		return t
	}
	return EventType(string(s))
}

// foldsToWireField reports whether key equals a field name under
// encoding/json's case-insensitive matching (key is ASCII).
func foldsToWireField(key []byte) bool {
	for _, n := range wireNames {
		if len(n) == len(key) && bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanPlainString scans the JSON string starting at b[i] (a quote). It
// returns the contents and the index after the closing quote; ok is false
// when the string is unterminated, holds an escape or a control byte, or
// is not valid UTF-8 (which encoding/json would rewrite).
func scanPlainString(b []byte, i int) (s []byte, end int, ok bool) {
	j := i + 1
	high := false
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			s = b[i+1 : j]
			if high && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			high = true
		}
		j++
	}
	return nil, 0, false
}

// scanNumber scans the JSON number starting at b[i] and returns the index
// after it; isInt when it has neither fraction nor exponent; ok false when
// it breaks the JSON number grammar.
func scanNumber(b []byte, i int) (end int, isInt, ok bool) {
	j := i
	if b[j] == '-' {
		j++
	}
	switch {
	case j >= len(b):
		return 0, false, false
	case b[j] == '0':
		j++
	case b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return 0, false, false
	}
	isInt = true
	if j < len(b) && b[j] == '.' {
		isInt = false
		j++
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return 0, false, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		isInt = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == k {
			return 0, false, false
		}
	}
	return j, isInt, true
}
