package privacy

import (
	"strings"

	"github.com/streamprofile/streamprofile/stream"
)

// Field is a set of the event fields DropPII may change.
type Field uint16

// The event fields DropPII looks at.
const (
	FieldSessionID Field = 1 << iota // categorical: dropped on any match
	FieldItemID                      // categorical
	FieldCategory                    // categorical
	FieldBrand                       // categorical
	FieldCurrency                    // categorical
	FieldQuery                       // free text: masked, dropped when all PII
	FieldText                        // free text
)

var fieldNames = [...]string{"session_id", "item_id", "category", "brand", "currency", "query", "text"}

// String lists the JSON names of the fields in f, joined by ','; "" for 0.
func (f Field) String() string {
	var b strings.Builder
	for i, n := range fieldNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// EventPII reports what DropPII changed.
type EventPII struct {
	Masked  Field // free-text fields whose items were masked
	Dropped Field // fields set to ""
	Kinds   Kind  // kinds of personal data found
}

// Found reports whether the event held any personal data.
func (r EventPII) Found() bool { return r.Kinds != 0 }

// DropPII removes personal data from ev in place, as described in the
// package documentation: free-text fields (query, text) are masked, or
// dropped when they are nothing but one item; categorical fields
// (session_id, item_id, category, brand, currency) are dropped when they
// contain any item; identifiers, times, numbers and consent are never
// touched. An event without personal data costs one pre-check per field
// and no allocation.
func (m *Masker) DropPII(ev *stream.Event) EventPII {
	var r EventPII
	for _, f := range [...]struct {
		v    *string
		f    Field
		free bool
	}{
		{&ev.SessionID, FieldSessionID, false}, {&ev.ItemID, FieldItemID, false},
		{&ev.Category, FieldCategory, false}, {&ev.Brand, FieldBrand, false},
		{&ev.Currency, FieldCurrency, false},
		{&ev.Query, FieldQuery, true}, {&ev.Text, FieldText, true},
	} {
		if *f.v == "" || !m.mayContain(*f.v) {
			continue
		}
		masked, kinds := m.mask(*f.v)
		if kinds == 0 {
			continue
		}
		r.Kinds |= kinds
		if !f.free || m.wholeItem(*f.v) {
			*f.v = ""
			r.Dropped |= f.f
			continue
		}
		*f.v = masked
		r.Masked |= f.f
	}
	return r
}
