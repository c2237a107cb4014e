package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// SchemaVersion is the only event schema version this build understands.
const SchemaVersion = 1

// EventType is the kind of a clickstream event.
type EventType string

// The event types of schema version 1.
const (
	TypeView           EventType = "view"
	TypeCart           EventType = "cart"
	TypeRemoveFromCart EventType = "remove_from_cart"
	TypePurchase       EventType = "purchase"
	TypeSearch         EventType = "search"
	TypeReview         EventType = "review"
	TypeIdentify       EventType = "identify"
	TypeConsent        EventType = "consent"
)

// Valid reports whether t is one of the schema-1 event types.
func (t EventType) Valid() bool {
	switch t {
	case TypeView, TypeCart, TypeRemoveFromCart, TypePurchase, TypeSearch, TypeReview, TypeIdentify, TypeConsent:
		return true
	}
	return false
}

// Consent is the payload of a consent event. A nil field means "unchanged".
type Consent struct {
	Profiling *bool `json:"profiling,omitempty"`
	Ads       *bool `json:"ads,omitempty"`
}

// Event is one decoded, validated clickstream event (schema version 1).
//
// Money is carried twice: Price as sent (float64, for display) and
// PriceMicros, the price in millionths of the currency unit, which is what
// every sum in the system uses so that totals are exact and independent of
// the order in which events are applied.
type Event struct {
	Schema      int       `json:"schema"`
	EventID     string    `json:"event_id"`
	Type        EventType `json:"type"`
	UserID      string    `json:"user_id,omitempty"`
	AnonymousID string    `json:"anonymous_id,omitempty"`
	TS          time.Time `json:"ts"`
	SessionID   string    `json:"session_id,omitempty"`
	ItemID      string    `json:"item_id,omitempty"`
	Category    string    `json:"category,omitempty"`
	Brand       string    `json:"brand,omitempty"`
	Price       *float64  `json:"price,omitempty"`
	Quantity    int       `json:"quantity,omitempty"`
	Currency    string    `json:"currency,omitempty"`
	Query       string    `json:"query,omitempty"`
	Text        string    `json:"text,omitempty"`
	Consent     *Consent  `json:"consent,omitempty"`

	// PriceMicros is Price in millionths, rounded half away from zero; 0
	// when Price is absent.
	PriceMicros int64 `json:"-"`
}

// ProfileKey is the id the event's features are kept under: the user id when
// known, else the anonymous id. It is also the Kafka message key producers
// are expected to use.
func (e *Event) ProfileKey() string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.AnonymousID
}

// Qty is the quantity with the schema default (1) applied.
func (e *Event) Qty() int64 {
	if e.Quantity <= 0 {
		return 1
	}
	return int64(e.Quantity)
}

// AmountMicros is price × quantity in millionths.
func (e *Event) AmountMicros() int64 { return e.PriceMicros * e.Qty() }

// Limits bound what a valid event may contain. The zero value is replaced by
// DefaultLimits in Decoder.
type Limits struct {
	// MaxFuture is how far past the decoder's clock an event time may lie.
	// Default 1h.
	MaxFuture time.Duration
	// MaxPrice is the largest accepted price. Default 1e9.
	MaxPrice float64
	// MaxQuantity is the largest accepted quantity. Default 10000.
	MaxQuantity int
	// MaxFieldLen is the largest accepted length in bytes of any string
	// field. Default 1024 (4096 for review text).
	MaxFieldLen int
	// MaxEventBytes is the largest accepted message value. Default 64 KiB.
	MaxEventBytes int
}

// DefaultLimits are the limits used when a Limits field is zero.
var DefaultLimits = Limits{
	MaxFuture:     time.Hour,
	MaxPrice:      1e9,
	MaxQuantity:   10000,
	MaxFieldLen:   1024,
	MaxEventBytes: 64 << 10,
}

func (l Limits) withDefaults() Limits {
	if l.MaxFuture <= 0 {
		l.MaxFuture = DefaultLimits.MaxFuture
	}
	if l.MaxPrice <= 0 {
		l.MaxPrice = DefaultLimits.MaxPrice
	}
	if l.MaxQuantity <= 0 {
		l.MaxQuantity = DefaultLimits.MaxQuantity
	}
	if l.MaxFieldLen <= 0 {
		l.MaxFieldLen = DefaultLimits.MaxFieldLen
	}
	if l.MaxEventBytes <= 0 {
		l.MaxEventBytes = DefaultLimits.MaxEventBytes
	}
	return l
}

// Decoder turns message values into validated events. It is safe for
// concurrent use.
type Decoder struct {
	limits Limits
	now    func() time.Time
}

// NewDecoder returns a decoder with the given limits; now is the clock used
// for the far-future check (time.Now when nil).
func NewDecoder(l Limits, now func() time.Time) *Decoder {
	if now == nil {
		now = time.Now
	}
	return &Decoder{limits: l.withDefaults(), now: now}
}

// wireEvent mirrors Event with the fields whose JSON form needs checking
// kept raw.
type wireEvent struct {
	Schema      *int            `json:"schema"`
	EventID     string          `json:"event_id"`
	Type        EventType       `json:"type"`
	UserID      string          `json:"user_id"`
	AnonymousID string          `json:"anonymous_id"`
	TS          string          `json:"ts"`
	SessionID   string          `json:"session_id"`
	ItemID      string          `json:"item_id"`
	Category    string          `json:"category"`
	Brand       string          `json:"brand"`
	Price       *float64        `json:"price"`
	Quantity    *int            `json:"quantity"`
	Currency    string          `json:"currency"`
	Query       string          `json:"query"`
	Text        string          `json:"text"`
	Consent     json.RawMessage `json:"consent"`

	// parseFast leaves the pointers above nil (pointing into w would move
	// it to the heap) and sets these instead, with a bit of numbers set
	// (1 << fSchema, fPrice or fQuantity) for each one present.
	schemaV, quantityV int
	priceV             float64
	numbers            uint32
}

// Decode parses and validates one message value. Unknown JSON fields are
// tolerated and ignored (they stay in the original bytes, which the caller
// keeps). Every failure is a *DecodeError naming its Reason.
func (d *Decoder) Decode(b []byte) (Event, error) {
	var ev Event
	if len(b) > d.limits.MaxEventBytes {
		return ev, decodeErr(ReasonTooLarge, "", fmt.Sprintf("event is %d bytes, limit %d", len(b), d.limits.MaxEventBytes))
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ev, decodeErr(ReasonMalformed, "", "value is not a JSON object")
	}
	var w wireEvent
	var schema, quantity *int
	var price *float64
	if w.parseFast(trimmed) {
		schema, price, quantity = w.fastNumbers()
	} else {
		// Anything unusual, valid or not: encoding/json decides.
		slow := new(wireEvent)
		if err := json.Unmarshal(trimmed, slow); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return ev, decodeErr(ReasonBadField, te.Field, fmt.Sprintf("field %q must be %s, got JSON %s", te.Field, te.Type, te.Value))
			}
			return ev, decodeErr(ReasonMalformed, "", "invalid JSON: "+err.Error())
		}
		w = *slow
		schema, price, quantity = w.Schema, w.Price, w.Quantity
	}
	if schema == nil {
		return ev, decodeErr(ReasonMissingField, "schema", "missing required field \"schema\"")
	}
	if *schema != SchemaVersion {
		return ev, decodeErr(ReasonUnknownSchema, "schema", fmt.Sprintf("unknown schema version %d (this build reads %d)", *schema, SchemaVersion))
	}
	ev.Schema = *schema
	if w.EventID == "" {
		return ev, decodeErr(ReasonMissingField, "event_id", "missing required field \"event_id\"")
	}
	ev.EventID = w.EventID
	if w.Type == "" {
		return ev, decodeErr(ReasonMissingField, "type", "missing required field \"type\"")
	}
	if !w.Type.Valid() {
		return ev, decodeErr(ReasonBadField, "type", fmt.Sprintf("unknown event type %q", truncate(string(w.Type), 64)))
	}
	ev.Type = w.Type
	if w.UserID == "" && w.AnonymousID == "" {
		return ev, decodeErr(ReasonMissingField, "user_id", "one of \"user_id\" or \"anonymous_id\" is required")
	}
	ev.UserID, ev.AnonymousID = w.UserID, w.AnonymousID
	if w.TS == "" {
		return ev, decodeErr(ReasonMissingField, "ts", "missing required field \"ts\"")
	}
	ts, err := time.Parse(time.RFC3339Nano, w.TS)
	if err != nil {
		return ev, decodeErr(ReasonBadTime, "ts", fmt.Sprintf("unparsable RFC 3339 time %q", truncate(w.TS, 64)))
	}
	if ts.UTC().Year() < 1970 { // in UTC: "1970-01-01T00:30:00+01:00" is 1969
		return ev, decodeErr(ReasonBadTime, "ts", "event time before 1970")
	}
	if limit := d.now().Add(d.limits.MaxFuture); ts.After(limit) {
		return ev, decodeErr(ReasonFutureTime, "ts", fmt.Sprintf("event time %s is more than %s in the future", ts.UTC().Format(time.RFC3339), d.limits.MaxFuture))
	}
	ev.TS = ts.UTC()
	ev.SessionID, ev.ItemID, ev.Category, ev.Brand = w.SessionID, w.ItemID, w.Category, w.Brand
	ev.Currency, ev.Query, ev.Text = w.Currency, w.Query, w.Text
	for _, f := range [...]struct {
		name, v string
		max     int
	}{
		{"event_id", ev.EventID, d.limits.MaxFieldLen}, {"user_id", ev.UserID, d.limits.MaxFieldLen},
		{"anonymous_id", ev.AnonymousID, d.limits.MaxFieldLen}, {"session_id", ev.SessionID, d.limits.MaxFieldLen},
		{"item_id", ev.ItemID, d.limits.MaxFieldLen}, {"category", ev.Category, d.limits.MaxFieldLen},
		{"brand", ev.Brand, d.limits.MaxFieldLen}, {"currency", ev.Currency, 16},
		{"query", ev.Query, d.limits.MaxFieldLen}, {"text", ev.Text, 4 * d.limits.MaxFieldLen},
	} {
		if len(f.v) > f.max {
			return ev, decodeErr(ReasonBadField, f.name, fmt.Sprintf("field %q is %d bytes, limit %d", f.name, len(f.v), f.max))
		}
	}
	if price != nil {
		p := *price
		if p < 0 {
			return ev, decodeErr(ReasonNegativePrice, "price", fmt.Sprintf("negative price %g", p))
		}
		if p > d.limits.MaxPrice || math.IsNaN(p) || math.IsInf(p, 0) {
			return ev, decodeErr(ReasonBadField, "price", fmt.Sprintf("price %g above limit %g", p, d.limits.MaxPrice))
		}
		ev.Price = &p
		ev.PriceMicros = int64(math.Round(p * 1e6))
	}
	if quantity != nil {
		q := *quantity
		if q < 1 || q > d.limits.MaxQuantity {
			return ev, decodeErr(ReasonBadField, "quantity", fmt.Sprintf("quantity %d outside [1, %d]", q, d.limits.MaxQuantity))
		}
		ev.Quantity = q
	} else {
		ev.Quantity = 1
	}
	if len(w.Consent) > 0 && !bytes.Equal(w.Consent, []byte("null")) {
		var c Consent
		if err := json.Unmarshal(w.Consent, &c); err != nil {
			return ev, decodeErr(ReasonBadField, "consent", "consent must be an object of booleans \"profiling\" and \"ads\"")
		}
		ev.Consent = &c
	}
	if err := requireByType(&ev); err != nil {
		return ev, err
	}
	return ev, nil
}

// requireByType checks the fields each event type needs.
func requireByType(ev *Event) error {
	switch ev.Type {
	case TypeView, TypeCart, TypeRemoveFromCart, TypeReview:
		if ev.ItemID == "" {
			return decodeErr(ReasonMissingField, "item_id", fmt.Sprintf("%s event needs \"item_id\"", ev.Type))
		}
	case TypePurchase:
		if ev.ItemID == "" {
			return decodeErr(ReasonMissingField, "item_id", "purchase event needs \"item_id\"")
		}
		if ev.Price == nil {
			return decodeErr(ReasonMissingField, "price", "purchase event needs \"price\"")
		}
	case TypeSearch:
		if strings.TrimSpace(ev.Query) == "" {
			return decodeErr(ReasonMissingField, "query", "search event needs a non-empty \"query\"")
		}
	case TypeIdentify:
		if ev.UserID == "" || ev.AnonymousID == "" {
			return decodeErr(ReasonMissingField, "anonymous_id", "identify event needs both \"user_id\" and \"anonymous_id\"")
		}
	case TypeConsent:
		if ev.Consent == nil || (ev.Consent.Profiling == nil && ev.Consent.Ads == nil) {
			return decodeErr(ReasonMissingField, "consent", "consent event needs \"consent\" with \"profiling\" and/or \"ads\"")
		}
	}
	return nil
}

// Encode renders ev as a schema-1 JSON message value.
func Encode(ev *Event) ([]byte, error) {
	if ev.Schema == 0 {
		ev.Schema = SchemaVersion
	}
	type plain Event // drop methods
	p := plain(*ev)
	s := struct {
		plain
		TS string `json:"ts"`
	}{plain: p, TS: ev.TS.UTC().Format(time.RFC3339Nano)}
	return json.Marshal(s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
