package stream_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/stream"
)

// testNow is the decoder clock of these tests.
var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestDecoder() *stream.Decoder {
	return stream.NewDecoder(stream.Limits{}, func() time.Time { return testNow })
}

// ev builds a JSON event: a valid view event with the given fields set,
// replaced or (with a nil value) removed. Values are raw JSON.
func ev(fields ...string) string {
	base := [][2]string{
		{"schema", `1`}, {"event_id", `"e1"`}, {"type", `"view"`}, {"user_id", `"u1"`},
		{"ts", `"2019-10-01T00:00:00Z"`}, {"item_id", `"i1"`},
	}
	for i := 0; i+1 < len(fields); i += 2 {
		k, v := fields[i], fields[i+1]
		found := false
		for j := range base {
			if base[j][0] == k {
				base[j][1], found = v, true
			}
		}
		if !found {
			base = append(base, [2]string{k, v})
		}
	}
	var b strings.Builder
	b.WriteByte('{')
	for _, kv := range base {
		if kv[1] == "" { // removed
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", kv[0], kv[1])
	}
	b.WriteByte('}')
	return b.String()
}

// del is the value that removes a field in ev.
const del = ""

// decodeCase is one row of the decoder specification. Bad rows name the
// Reason and Field of the expected *DecodeError.
type decodeCase struct {
	name   string
	in     string
	reason stream.Reason // "" for an accepted event
	field  string
}

var (
	long     = `"` + strings.Repeat("x", 1025) + `"`
	maxLen   = `"` + strings.Repeat("x", 1024) + `"`
	inFuture = strconv.Quote(testNow.Add(time.Hour + time.Second).Format(time.RFC3339))
	atLimit  = strconv.Quote(testNow.Add(time.Hour).Format(time.RFC3339Nano))
)

// badCases are rejected by the decoder; FuzzDecode and the schema package
// share the idea (the schema test has its own table).
var badCases = []decodeCase{
	// malformed
	{"empty value", ``, stream.ReasonMalformed, ""},
	{"whitespace", " \n\t", stream.ReasonMalformed, ""},
	{"array", `[1,2]`, stream.ReasonMalformed, ""},
	{"null", `null`, stream.ReasonMalformed, ""},
	{"string", `"view"`, stream.ReasonMalformed, ""},
	{"truncated object", `{"schema":1,"event_id":"e1"`, stream.ReasonMalformed, ""},
	{"trailing comma", `{"schema":1,}`, stream.ReasonMalformed, ""},
	{"trailing garbage", ev() + `x`, stream.ReasonMalformed, ""},
	{"two objects", ev() + ev(), stream.ReasonMalformed, ""},
	// unknown_schema
	{"schema 2", ev("schema", `2`), stream.ReasonUnknownSchema, "schema"},
	{"schema 0", ev("schema", `0`), stream.ReasonUnknownSchema, "schema"},
	{"schema -1", ev("schema", `-1`), stream.ReasonUnknownSchema, "schema"},
	// missing_field, one per field
	{"no schema", ev("schema", del), stream.ReasonMissingField, "schema"},
	{"null schema", ev("schema", `null`), stream.ReasonMissingField, "schema"},
	{"no event_id", ev("event_id", del), stream.ReasonMissingField, "event_id"},
	{"empty event_id", ev("event_id", `""`), stream.ReasonMissingField, "event_id"},
	{"null event_id", ev("event_id", `null`), stream.ReasonMissingField, "event_id"},
	{"no type", ev("type", del), stream.ReasonMissingField, "type"},
	{"empty type", ev("type", `""`), stream.ReasonMissingField, "type"},
	{"no user_id nor anonymous_id", ev("user_id", del), stream.ReasonMissingField, "user_id"},
	{"empty user_id and anonymous_id", ev("user_id", `""`, "anonymous_id", `""`), stream.ReasonMissingField, "user_id"},
	{"no ts", ev("ts", del), stream.ReasonMissingField, "ts"},
	{"empty ts", ev("ts", `""`), stream.ReasonMissingField, "ts"},
	{"view without item_id", ev("item_id", del), stream.ReasonMissingField, "item_id"},
	{"cart without item_id", ev("type", `"cart"`, "item_id", `""`), stream.ReasonMissingField, "item_id"},
	{"remove_from_cart without item_id", ev("type", `"remove_from_cart"`, "item_id", del), stream.ReasonMissingField, "item_id"},
	{"review without item_id", ev("type", `"review"`, "item_id", del, "text", `"ok"`), stream.ReasonMissingField, "item_id"},
	{"purchase without item_id", ev("type", `"purchase"`, "item_id", del, "price", `1`), stream.ReasonMissingField, "item_id"},
	{"purchase without price", ev("type", `"purchase"`), stream.ReasonMissingField, "price"},
	{"purchase with null price", ev("type", `"purchase"`, "price", `null`), stream.ReasonMissingField, "price"},
	{"search without query", ev("type", `"search"`, "item_id", del), stream.ReasonMissingField, "query"},
	{"search with blank query", ev("type", `"search"`, "query", `" \t\u00a0\u3000"`), stream.ReasonMissingField, "query"},
	{"identify without anonymous_id", ev("type", `"identify"`), stream.ReasonMissingField, "anonymous_id"},
	{"identify without user_id", ev("type", `"identify"`, "user_id", del, "anonymous_id", `"a1"`), stream.ReasonMissingField, "anonymous_id"},
	{"consent without consent", ev("type", `"consent"`), stream.ReasonMissingField, "consent"},
	{"consent with null consent", ev("type", `"consent"`, "consent", `null`), stream.ReasonMissingField, "consent"},
	{"consent with empty consent", ev("type", `"consent"`, "consent", `{}`), stream.ReasonMissingField, "consent"},
	{"consent with null flags", ev("type", `"consent"`, "consent", `{"profiling":null,"ads":null}`), stream.ReasonMissingField, "consent"},
	// bad_field
	{"unknown type", ev("type", `"click"`), stream.ReasonBadField, "type"},
	{"type in capitals", ev("type", `"VIEW"`), stream.ReasonBadField, "type"},
	{"schema as string", ev("schema", `"1"`), stream.ReasonBadField, "schema"},
	{"schema as float", ev("schema", `1.5`), stream.ReasonBadField, "schema"},
	{"event_id as number", ev("event_id", `42`), stream.ReasonBadField, "event_id"},
	{"user_id as number", ev("user_id", `541312140`), stream.ReasonBadField, "user_id"},
	{"ts as number", ev("ts", `1569888000`), stream.ReasonBadField, "ts"},
	{"price as string", ev("price", `"1.00"`), stream.ReasonBadField, "price"},
	{"price above limit", ev("price", `1000000000.01`), stream.ReasonBadField, "price"},
	{"price overflowing float64", ev("price", `1e400`), stream.ReasonBadField, "price"},
	{"quantity 0", ev("quantity", `0`), stream.ReasonBadField, "quantity"},
	{"quantity -1", ev("quantity", `-1`), stream.ReasonBadField, "quantity"},
	{"quantity above limit", ev("quantity", `10001`), stream.ReasonBadField, "quantity"},
	{"quantity fractional", ev("quantity", `1.5`), stream.ReasonBadField, "quantity"},
	{"quantity as string", ev("quantity", `"2"`), stream.ReasonBadField, "quantity"},
	{"quantity overflowing int", ev("quantity", `1e30`), stream.ReasonBadField, "quantity"},
	{"consent as string", ev("type", `"consent"`, "consent", `"yes"`), stream.ReasonBadField, "consent"},
	{"consent flag as string", ev("type", `"consent"`, "consent", `{"ads":"no"}`), stream.ReasonBadField, "consent"},
	{"consent as array", ev("consent", `[true]`), stream.ReasonBadField, "consent"},
	{"event_id too long", ev("event_id", long), stream.ReasonBadField, "event_id"},
	{"user_id too long", ev("user_id", long), stream.ReasonBadField, "user_id"},
	{"anonymous_id too long", ev("anonymous_id", long), stream.ReasonBadField, "anonymous_id"},
	{"session_id too long", ev("session_id", long), stream.ReasonBadField, "session_id"},
	{"item_id too long", ev("item_id", long), stream.ReasonBadField, "item_id"},
	{"category too long", ev("category", long), stream.ReasonBadField, "category"},
	{"brand too long", ev("brand", long), stream.ReasonBadField, "brand"},
	{"query too long", ev("query", long), stream.ReasonBadField, "query"},
	{"currency too long", ev("currency", `"`+strings.Repeat("U", 17)+`"`), stream.ReasonBadField, "currency"},
	{"text too long", ev("text", `"`+strings.Repeat("x", 4097)+`"`), stream.ReasonBadField, "text"},
	{"length counts bytes", ev("brand", `"`+strings.Repeat("é", 513)+`"`), stream.ReasonBadField, "brand"},
	// bad_time
	{"ts with a space", ev("ts", `"2019-10-01 00:00:00Z"`), stream.ReasonBadTime, "ts"},
	{"ts without zone", ev("ts", `"2019-10-01T00:00:00"`), stream.ReasonBadTime, "ts"},
	{"ts REES46 layout", ev("ts", `"2019-10-01 00:00:00 UTC"`), stream.ReasonBadTime, "ts"},
	{"ts lower-case t", ev("ts", `"2019-10-01t00:00:00Z"`), stream.ReasonBadTime, "ts"},
	{"ts date only", ev("ts", `"2019-10-01"`), stream.ReasonBadTime, "ts"},
	{"ts word", ev("ts", `"yesterday"`), stream.ReasonBadTime, "ts"},
	{"ts no such day", ev("ts", `"2019-02-30T00:00:00Z"`), stream.ReasonBadTime, "ts"},
	{"ts hour 24", ev("ts", `"2019-10-01T24:00:00Z"`), stream.ReasonBadTime, "ts"},
	{"ts leap second", ev("ts", `"2016-12-31T23:59:60Z"`), stream.ReasonBadTime, "ts"},
	{"ts before 1970", ev("ts", `"1969-12-31T23:59:59Z"`), stream.ReasonBadTime, "ts"},
	{"ts before 1970 in UTC only", ev("ts", `"1970-01-01T00:30:00+01:00"`), stream.ReasonBadTime, "ts"},
	{"ts year 0", ev("ts", `"0000-01-01T00:00:00Z"`), stream.ReasonBadTime, "ts"},
	// future_time
	{"ts 1h1s ahead", ev("ts", inFuture), stream.ReasonFutureTime, "ts"},
	{"ts year 9999", ev("ts", `"9999-12-31T23:59:59Z"`), stream.ReasonFutureTime, "ts"},
	// negative_price
	{"negative price", ev("price", `-0.01`), stream.ReasonNegativePrice, "price"},
	{"tiny negative price", ev("price", `-1e-9`), stream.ReasonNegativePrice, "price"},
	{"negative purchase price", ev("type", `"purchase"`, "price", `-5`), stream.ReasonNegativePrice, "price"},
}

// goodCases are accepted; want checks the decoded event.
var goodCases = []struct {
	name string
	in   string
	want func(e stream.Event) string // "" when e is right
}{
	{"minimal view", ev(), func(e stream.Event) string {
		return expect(e, stream.Event{Schema: 1, EventID: "e1", Type: stream.TypeView, UserID: "u1",
			TS: time.Date(2019, 10, 1, 0, 0, 0, 0, time.UTC), ItemID: "i1", Quantity: 1})
	}},
	{"quantity defaults to 1", ev("quantity", del), func(e stream.Event) string { return cmp(e.Quantity, 1) }},
	{"null quantity defaults to 1", ev("quantity", `null`), func(e stream.Event) string { return cmp(e.Quantity, 1) }},
	{"quantity kept", ev("quantity", `3`), func(e stream.Event) string { return cmp(e.Quantity, 3) }},
	{"quantity at limit", ev("quantity", `10000`), func(e stream.Event) string { return cmp(e.Quantity, 10000) }},
	{"anonymous only", ev("user_id", del, "anonymous_id", `"a1"`), func(e stream.Event) string {
		return cmp(e.ProfileKey(), "a1")
	}},
	{"user id wins as profile key", ev("anonymous_id", `"a1"`), func(e stream.Event) string { return cmp(e.ProfileKey(), "u1") }},
	{"null optional strings are absent", ev("brand", `null`, "category", `null`, "anonymous_id", `null`), func(e stream.Event) string {
		return cmp(e.Brand+e.Category+e.AnonymousID, "")
	}},
	{"unknown fields tolerated and ignored", ev("x_campaign", `{"a":[1,2,{"b":null}]}`, "z", `"zz"`, "n", `1e999`), func(e stream.Event) string {
		d, _ := newTestDecoder().Decode([]byte(ev()))
		return expect(e, d)
	}},
	{"offset converted to UTC", ev("ts", `"2019-10-01T02:00:00+02:00"`), func(e stream.Event) string {
		return cmp(e.TS.String(), time.Date(2019, 10, 1, 0, 0, 0, 0, time.UTC).String())
	}},
	{"nanoseconds kept", ev("ts", `"2019-10-01T00:00:00.123456789Z"`), func(e stream.Event) string { return cmp(e.TS.Nanosecond(), 123456789) }},
	{"1970 epoch", ev("ts", `"1970-01-01T00:00:00Z"`), func(e stream.Event) string { return cmp(e.TS.Unix(), int64(0)) }},
	{"exactly MaxFuture ahead", ev("ts", atLimit), func(e stream.Event) string { return cmp(e.TS.Equal(testNow.Add(time.Hour)), true) }},
	{"price 0", ev("type", `"purchase"`, "price", `0`), func(e stream.Event) string { return cmp(e.PriceMicros, int64(0)) }},
	{"price -0", ev("price", `-0`), func(e stream.Event) string { return cmp(e.PriceMicros, int64(0)) }},
	{"price at limit", ev("price", `1e9`), func(e stream.Event) string { return cmp(e.PriceMicros, int64(1e15)) }},
	{"price micros", ev("price", `19.99`), func(e stream.Event) string { return cmp(e.PriceMicros, int64(19_990_000)) }},
	{"price micros of a float-inexact decimal", ev("price", `0.1`), func(e stream.Event) string { return cmp(e.PriceMicros, int64(100_000)) }},
	{"price micros round half away from zero", ev("price", `0.0078125`), func(e stream.Event) string { return cmp(e.PriceMicros, int64(7813)) }},
	{"price micros round down", ev("price", `0.0000004`), func(e stream.Event) string { return cmp(e.PriceMicros, int64(0)) }},
	{"price kept as sent", ev("price", `35.79`), func(e stream.Event) string { return cmp(*e.Price, 35.79) }},
	{"no price, no micros", ev(), func(e stream.Event) string { return cmp(e.Price == nil && e.PriceMicros == 0, true) }},
	{"leading whitespace", " \n" + ev() + "\n", func(e stream.Event) string { return cmp(e.EventID, "e1") }},
	{"field at max length", ev("brand", maxLen, "text", `"`+strings.Repeat("y", 4096)+`"`), func(e stream.Event) string {
		return cmp(len(e.Brand)+len(e.Text), 1024+4096)
	}},
	{"duplicate key: last wins", `{"schema":1,"event_id":"a","event_id":"b","type":"view","user_id":"u","ts":"2019-10-01T00:00:00Z","item_id":"i"}`,
		func(e stream.Event) string { return cmp(e.EventID, "b") }},
	{"cart", ev("type", `"cart"`), func(e stream.Event) string { return cmp(e.Type, stream.TypeCart) }},
	{"remove_from_cart", ev("type", `"remove_from_cart"`), func(e stream.Event) string { return cmp(e.Type, stream.TypeRemoveFromCart) }},
	{"purchase", ev("type", `"purchase"`, "price", `10`, "quantity", `2`, "currency", `"USD"`), func(e stream.Event) string {
		return cmp(e.AmountMicros(), int64(20_000_000))
	}},
	{"review", ev("type", `"review"`, "text", `"great"`), func(e stream.Event) string { return cmp(e.Text, "great") }},
	{"search without item", ev("type", `"search"`, "item_id", del, "query", `" shoes "`), func(e stream.Event) string {
		return cmp(e.Query, " shoes ")
	}},
	{"identify", ev("type", `"identify"`, "anonymous_id", `"a1"`), func(e stream.Event) string { return cmp(e.AnonymousID, "a1") }},
	{"consent profiling only", ev("type", `"consent"`, "item_id", del, "consent", `{"profiling":false}`), func(e stream.Event) string {
		return cmp(e.Consent != nil && e.Consent.Profiling != nil && !*e.Consent.Profiling && e.Consent.Ads == nil, true)
	}},
	{"consent ads only, unknown flag ignored", ev("type", `"consent"`, "consent", `{"ads":true,"email":true}`), func(e stream.Event) string {
		return cmp(e.Consent != nil && e.Consent.Ads != nil && *e.Consent.Ads && e.Consent.Profiling == nil, true)
	}},
	{"non-consent event may carry consent", ev("consent", `{}`), func(e stream.Event) string { return cmp(e.Consent != nil, true) }},
}

func expect(got, want stream.Event) string {
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func cmp[T comparable](got, want T) string {
	if got != want {
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	return ""
}

func TestDecodeRejects(t *testing.T) {
	dec := newTestDecoder()
	seen := map[stream.Reason]bool{}
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dec.Decode([]byte(tc.in))
			var de *stream.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode(%.80s) = %v, want a *stream.DecodeError", tc.in, err)
			}
			if de.Reason != tc.reason || de.Field != tc.field {
				t.Fatalf("Decode(%.80s) = %s/%q (%v), want %s/%q", tc.in, de.Reason, de.Field, err, tc.reason, tc.field)
			}
			if de.Msg == "" || !strings.HasPrefix(err.Error(), string(de.Reason)) {
				t.Fatalf("unhelpful error %q", err)
			}
			seen[de.Reason] = true
		})
	}
	// too_large needs its own limit.
	small := stream.NewDecoder(stream.Limits{MaxEventBytes: len(ev())}, func() time.Time { return testNow })
	if _, err := small.Decode([]byte(ev())); err != nil {
		t.Fatalf("event of exactly MaxEventBytes rejected: %v", err)
	}
	_, err := small.Decode([]byte(ev() + " "))
	var de *stream.DecodeError
	if !errors.As(err, &de) || de.Reason != stream.ReasonTooLarge {
		t.Fatalf("event of MaxEventBytes+1: %v, want too_large", err)
	}
	seen[de.Reason] = true
	_, err = newTestDecoder().Decode([]byte(ev("pad", `"`+strings.Repeat("x", 64<<10)+`"`)))
	if !errors.As(err, &de) || de.Reason != stream.ReasonTooLarge {
		t.Fatalf("event above the default 64 KiB: %v, want too_large", err)
	}
	for _, r := range []stream.Reason{stream.ReasonMalformed, stream.ReasonTooLarge, stream.ReasonUnknownSchema,
		stream.ReasonMissingField, stream.ReasonBadField, stream.ReasonBadTime, stream.ReasonFutureTime, stream.ReasonNegativePrice} {
		if !seen[r] && !t.Failed() {
			t.Errorf("no case produces reason %s", r)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	dec := newTestDecoder()
	for _, tc := range goodCases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := dec.Decode([]byte(tc.in))
			if err != nil {
				t.Fatalf("Decode(%.120s): %v", tc.in, err)
			}
			if msg := tc.want(e); msg != "" {
				t.Fatal(msg)
			}
			if !e.Type.Valid() || e.Schema != stream.SchemaVersion || e.Quantity < 1 || e.TS.Location() != time.UTC {
				t.Fatalf("decoded event breaks an invariant: %+v", e)
			}
		})
	}
}

func TestDecoderLimits(t *testing.T) {
	l := stream.Limits{MaxFuture: time.Minute, MaxPrice: 100, MaxQuantity: 5, MaxFieldLen: 8, MaxEventBytes: 4096}
	dec := stream.NewDecoder(l, func() time.Time { return testNow })
	for _, tc := range []struct {
		in     string
		reason stream.Reason
	}{
		{ev("ts", strconv.Quote(testNow.Add(time.Minute).Format(time.RFC3339))), ""},
		{ev("ts", strconv.Quote(testNow.Add(time.Minute+time.Second).Format(time.RFC3339))), stream.ReasonFutureTime},
		{ev("price", `100`), ""},
		{ev("price", `100.01`), stream.ReasonBadField},
		{ev("quantity", `5`), ""},
		{ev("quantity", `6`), stream.ReasonBadField},
		{ev("brand", `"12345678"`), ""},
		{ev("brand", `"123456789"`), stream.ReasonBadField},
		{ev("text", `"`+strings.Repeat("t", 32)+`"`), ""}, // 4 × MaxFieldLen
		{ev("text", `"`+strings.Repeat("t", 33)+`"`), stream.ReasonBadField},
		{ev("currency", `"0123456789abcdef"`), ""}, // currency is capped at 16 whatever MaxFieldLen
	} {
		_, err := dec.Decode([]byte(tc.in))
		var de *stream.DecodeError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("Decode(%s): %v", tc.in, err)
		case tc.reason != "" && (!errors.As(err, &de) || de.Reason != tc.reason):
			t.Errorf("Decode(%s) = %v, want %s", tc.in, err, tc.reason)
		}
	}
	// The zero Limits are the defaults.
	zero := stream.NewDecoder(stream.Limits{}, func() time.Time { return testNow })
	explicit := stream.NewDecoder(stream.DefaultLimits, func() time.Time { return testNow })
	for _, c := range badCases {
		_, e1 := zero.Decode([]byte(c.in))
		_, e2 := explicit.Decode([]byte(c.in))
		if fmt.Sprint(e1) != fmt.Sprint(e2) {
			t.Errorf("%s: zero limits %v, DefaultLimits %v", c.name, e1, e2)
		}
	}
}

func TestDecodeErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  stream.DecodeError
		want string
	}{
		{stream.DecodeError{Reason: stream.ReasonBadField, Field: "price", Msg: "m"}, "bad_field (price): m"},
		{stream.DecodeError{Reason: stream.ReasonMalformed, Msg: "m"}, "malformed: m"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestEventAmounts(t *testing.T) {
	for _, tc := range []struct {
		e           stream.Event
		qty, amount int64
		profileKey  string
	}{
		{stream.Event{UserID: "u", AnonymousID: "a", PriceMicros: 1_500_000, Quantity: 3}, 3, 4_500_000, "u"},
		{stream.Event{AnonymousID: "a", PriceMicros: 7}, 1, 7, "a"}, // zero quantity reads as 1
		{stream.Event{UserID: "u", Quantity: -2, PriceMicros: 5}, 1, 5, "u"},
	} {
		if q, a, k := tc.e.Qty(), tc.e.AmountMicros(), tc.e.ProfileKey(); q != tc.qty || a != tc.amount || k != tc.profileKey {
			t.Errorf("%+v: Qty %d AmountMicros %d ProfileKey %q, want %d %d %q", tc.e, q, a, k, tc.qty, tc.amount, tc.profileKey)
		}
	}
}

func TestEventTypeValid(t *testing.T) {
	for _, typ := range []stream.EventType{stream.TypeView, stream.TypeCart, stream.TypeRemoveFromCart, stream.TypePurchase,
		stream.TypeSearch, stream.TypeReview, stream.TypeIdentify, stream.TypeConsent} {
		if !typ.Valid() {
			t.Errorf("%s not valid", typ)
		}
	}
	for _, typ := range []stream.EventType{"", "View", "click", "purchase "} {
		if typ.Valid() {
			t.Errorf("%q valid", typ)
		}
	}
}

// TestPriceMicrosExactForSixDecimals: any price with at most 6 decimals up
// to MaxPrice decodes to exactly its micros, however float64 rounds it.
func TestPriceMicrosExactForSixDecimals(t *testing.T) {
	dec := newTestDecoder()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 6000 {
		var m int64
		switch i % 3 {
		case 0:
			m = rng.Int64N(1e15 + 1) // up to MaxPrice
		case 1:
			m = rng.Int64N(1e8) // everyday prices
		default:
			m = rng.Int64N(1e6) * 10_000 // cents
		}
		s := fmt.Sprintf("%d.%06d", m/1e6, m%1e6)
		e, err := dec.Decode([]byte(ev("price", s)))
		if err != nil {
			t.Fatalf("price %s: %v", s, err)
		}
		if e.PriceMicros != m {
			t.Fatalf("price %s: PriceMicros %d, want %d", s, e.PriceMicros, m)
		}
		if want, _ := strconv.ParseFloat(s, 64); *e.Price != want {
			t.Fatalf("price %s kept as %v", s, *e.Price)
		}
	}
}

// randomEvent returns a valid event with random content, as Decode would
// return it (UTC time, quantity set, PriceMicros consistent with Price).
func randomEvent(rng *rand.Rand) stream.Event {
	str := func(max int) string {
		const alphabet = "abcXYZ019 _-.:/<>&\"\\\u00e9\u2028\u4e16\U0001F600\x01\t\n"
		runes := []rune(alphabet)
		n := rng.IntN(max + 1)
		var b strings.Builder
		for b.Len() < n {
			r := runes[rng.IntN(len(runes))]
			if b.Len()+len(string(r)) > n {
				break
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	types := []stream.EventType{stream.TypeView, stream.TypeCart, stream.TypeRemoveFromCart, stream.TypePurchase,
		stream.TypeSearch, stream.TypeReview, stream.TypeIdentify, stream.TypeConsent}
	e := stream.Event{
		Schema:    1,
		EventID:   "e" + str(40),
		Type:      types[rng.IntN(len(types))],
		UserID:    str(30),
		TS:        time.Unix(rng.Int64N(testNow.Unix()), rng.Int64N(1e9)).UTC(),
		SessionID: str(36),
		ItemID:    "i" + str(20),
		Category:  str(40),
		Brand:     str(20),
		Quantity:  1 + rng.IntN(10000),
		Currency:  str(16),
		Query:     "q" + str(50),
		Text:      str(200),
	}
	if e.UserID == "" || e.Type == stream.TypeIdentify || rng.IntN(3) == 0 {
		e.AnonymousID = "a" + str(30)
	}
	if e.UserID == "" && e.Type == stream.TypeIdentify {
		e.UserID = "u"
	}
	if e.Type == stream.TypePurchase || rng.IntN(2) == 0 {
		var p float64
		switch rng.IntN(3) {
		case 0:
			p = float64(rng.Int64N(1e11)) / 100 // cents
		case 1:
			p = rng.Float64() * 1e9 // any float
		}
		e.Price = &p
		e.PriceMicros = int64(math.Round(p * 1e6))
	}
	if e.Type == stream.TypeConsent || rng.IntN(4) == 0 {
		t, f := true, false
		e.Consent = &stream.Consent{Profiling: &t}
		if rng.IntN(2) == 0 {
			e.Consent = &stream.Consent{Ads: &f}
		}
	}
	return e
}

// TestEncodeDecodeRoundTrip is the property Decode(Encode(e)) == e for
// valid events, and that Encode writes no PriceMicros.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	dec := newTestDecoder()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1500 {
		want := randomEvent(rng)
		b, err := stream.Encode(&want)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", want, err)
		}
		got, err := dec.Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)) = %v\n%s", want, err, b)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip changed the event\n got %+v\nwant %+v\n%s", got, want, b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			if strings.Contains(strings.ToLower(k), "micros") {
				t.Fatalf("Encode wrote %q", k)
			}
		}
		if m["ts"] != want.TS.Format(time.RFC3339Nano) {
			t.Fatalf("ts encoded as %v", m["ts"])
		}
	}
}

func TestEncodeFillsSchemaAndNormalisesTime(t *testing.T) {
	e := stream.Event{EventID: "e", Type: stream.TypeView, UserID: "u", ItemID: "i",
		TS: time.Date(2019, 10, 1, 2, 0, 0, 0, time.FixedZone("CEST", 2*3600))}
	b, err := stream.Encode(&e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema":1,"event_id":"e","type":"view","user_id":"u","item_id":"i","ts":"2019-10-01T00:00:00Z"}`
	if string(b) != want {
		t.Fatalf("Encode = %s, want %s", b, want)
	}
}

// TestDecoderConcurrentUse: one Decoder shared by goroutines (run with -race).
func TestDecoderConcurrentUse(t *testing.T) {
	dec := newTestDecoder()
	inputs := make([][]byte, 0, len(goodCases)+len(badCases))
	for _, c := range goodCases {
		inputs = append(inputs, []byte(c.in))
	}
	for _, c := range badCases {
		inputs = append(inputs, []byte(c.in))
	}
	type result struct {
		e   stream.Event
		err string
	}
	decode := func(in []byte) result {
		e, err := dec.Decode(in)
		return result{e, fmt.Sprint(err)}
	}
	want := make([]result, len(inputs))
	for i, in := range inputs {
		want[i] = decode(in)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range inputs {
				j := (i + g*7) % len(inputs)
				if got := decode(inputs[j]); !reflect.DeepEqual(got, want[j]) {
					t.Errorf("concurrent decode of input %d differs", j)
					return
				}
			}
		})
	}
	wg.Wait()
}
