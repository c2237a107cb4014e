package schema_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/schema"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func compile(t testing.TB) *jsonschema.Schema {
	t.Helper()
	sch, err := schema.Compile(schema.ClickstreamV1)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// validate reports whether b is a JSON value the schema accepts; text that
// is not JSON at all is rejected before validation.
func validate(sch *jsonschema.Schema, b []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(v)
}

func TestCompile(t *testing.T) {
	names := schema.Names()
	if len(names) == 0 || names[0] == "" {
		t.Fatalf("Names() = %q", names)
	}
	for _, n := range names {
		if _, err := schema.Compile(n); err != nil {
			t.Errorf("Compile(%s): %v", n, err)
		}
		src, err := schema.Source(n)
		if err != nil || !json.Valid(src) {
			t.Errorf("Source(%s) = %d bytes, %v", n, len(src), err)
		}
	}
	for _, bad := range []string{"", "nope.schema.json", "doc.go", "../schema/" + schema.ClickstreamV1} {
		if _, err := schema.Compile(bad); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Compile(%q) = %v, want fs.ErrNotExist", bad, err)
		}
		if _, err := schema.Source(bad); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Source(%q) = %v, want fs.ErrNotExist", bad, err)
		}
	}
}

// TestBundledEventsValidate: every event produced from the bundled datasets
// (94,012 of them) is valid under the schema. Reading and validating cost
// ~50 µs an event, ten times that under the race detector, so a -race build
// checks the first raceLines lines of each file; a plain `go test ./schema`
// checks them all.
func TestBundledEventsValidate(t *testing.T) {
	const raceLines = 2000
	sch := compile(t)
	for _, ds := range []struct {
		format source.Format
		name   string
	}{
		{source.REES46, data.REES46Sample},
		{source.CDNOW, data.CDNOWMaster},
		{source.CDNOW, data.CDNOWSample},
	} {
		t.Run(ds.name, func(t *testing.T) {
			t.Parallel()
			rc, err := data.Open(ds.name)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			var in io.Reader = rc
			if raceEnabled {
				in = headLines(t, rc, raceLines)
			}
			r, err := source.NewReader(ds.format, ds.name, in)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for ; ; n++ {
				rec, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := validate(sch, rec.Value); err != nil {
					t.Fatalf("line %d: %s\n%v", rec.Line, rec.Value, err)
				}
			}
			if n == 0 {
				t.Fatal("no events")
			}
		})
	}
}

// headLines returns the first n lines of r.
func headLines(t *testing.T, r io.Reader, n int) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	sc := bufio.NewScanner(r)
	for i := 0; i < n && sc.Scan(); i++ {
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// ev builds a JSON event: a valid view event with fields set, replaced or
// (value "") removed. Values are raw JSON.
func ev(fields ...string) string {
	base := [][2]string{
		{"schema", `1`}, {"event_id", `"e1"`}, {"type", `"view"`}, {"user_id", `"u1"`},
		{"ts", `"2019-10-01T00:00:00Z"`}, {"item_id", `"i1"`},
	}
	for i := 0; i+1 < len(fields); i += 2 {
		found := false
		for j := range base {
			if base[j][0] == fields[i] {
				base[j][1], found = fields[i+1], true
			}
		}
		if !found {
			base = append(base, [2]string{fields[i], fields[i+1]})
		}
	}
	parts := make([]string, 0, len(base))
	for _, kv := range base {
		if kv[1] != "" {
			parts = append(parts, strconv.Quote(kv[0])+":"+kv[1])
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// agreement is one row of the schema/decoder comparison. reason is the
// decoder's verdict ("" = accepted) and schemaOK the schema's. Where the two
// disagree, why must say why a static schema cannot (or should not) agree.
type agreement struct {
	name     string
	in       string
	reason   stream.Reason
	schemaOK bool
	why      string
}

var agreements = []agreement{
	// Both accept.
	{"minimal view", ev(), "", true, ""},
	{"anonymous only", ev("user_id", "", "anonymous_id", `"a"`), "", true, ""},
	{"null optional fields", ev("brand", `null`, "price", `null`, "quantity", `null`, "consent", `null`, "anonymous_id", `null`), "", true, ""},
	{"unknown fields", ev("x_campaign", `{"a":[1]}`, "UTM", `"z"`, "pricey", `-1`), "", true, ""},
	{"offset and fraction", ev("ts", `"2019-10-01T02:00:00.123456789+02:00"`), "", true, ""},
	{"1970 epoch", ev("ts", `"1970-01-01T00:00:00Z"`), "", true, ""},
	{"price 0 and -0", ev("price", `-0`), "", true, ""},
	{"price at limit", ev("price", `1e9`), "", true, ""},
	{"quantity at limit", ev("quantity", `10000`), "", true, ""},
	{"purchase", ev("type", `"purchase"`, "price", `9.99`, "quantity", `2`, "currency", `"USD"`), "", true, ""},
	{"review", ev("type", `"review"`, "text", `"ok"`), "", true, ""},
	{"search", ev("type", `"search"`, "item_id", "", "query", `" x "`), "", true, ""},
	{"identify", ev("type", `"identify"`, "anonymous_id", `"a"`), "", true, ""},
	{"consent", ev("type", `"consent"`, "consent", `{"profiling":false,"ads":null,"email":true}`), "", true, ""},
	{"consent on another type", ev("consent", `{}`), "", true, ""},
	{"max length ASCII", ev("brand", `"`+strings.Repeat("b", 1024)+`"`, "text", `"`+strings.Repeat("t", 4096)+`"`), "", true, ""},
	{"ts exactly 1h ahead", ev("ts", strconv.Quote(now.Add(time.Hour).Format(time.RFC3339))), "", true, ""},

	// Both reject.
	{"not an object", `[1]`, stream.ReasonMalformed, false, ""},
	{"not JSON", `{"schema":1,`, stream.ReasonMalformed, false, ""},
	{"schema 2", ev("schema", `2`), stream.ReasonUnknownSchema, false, ""},
	{"no schema", ev("schema", ""), stream.ReasonMissingField, false, ""},
	{"schema as string", ev("schema", `"1"`), stream.ReasonBadField, false, ""},
	{"no event_id", ev("event_id", ""), stream.ReasonMissingField, false, ""},
	{"empty event_id", ev("event_id", `""`), stream.ReasonMissingField, false, ""},
	{"event_id number", ev("event_id", `7`), stream.ReasonBadField, false, ""},
	{"no type", ev("type", ""), stream.ReasonMissingField, false, ""},
	{"unknown type", ev("type", `"click"`), stream.ReasonBadField, false, ""},
	{"no user", ev("user_id", ""), stream.ReasonMissingField, false, ""},
	{"empty user and anonymous", ev("user_id", `""`, "anonymous_id", `null`), stream.ReasonMissingField, false, ""},
	{"no ts", ev("ts", ""), stream.ReasonMissingField, false, ""},
	{"ts not RFC 3339", ev("ts", `"2019-10-01 00:00:00 UTC"`), stream.ReasonBadTime, false, ""},
	{"ts lower-case t", ev("ts", `"2019-10-01t00:00:00z"`), stream.ReasonBadTime, false, ""},
	{"ts leap second", ev("ts", `"2016-12-31T23:59:60Z"`), stream.ReasonBadTime, false, ""},
	{"ts Feb 30", ev("ts", `"2019-02-30T00:00:00Z"`), stream.ReasonBadTime, false, ""},
	{"ts no zone", ev("ts", `"2019-10-01T00:00:00"`), stream.ReasonBadTime, false, ""},
	{"ts 1969", ev("ts", `"1969-12-31T23:59:59Z"`), stream.ReasonBadTime, false, ""},
	{"ts number", ev("ts", `0`), stream.ReasonBadField, false, ""},
	{"view without item", ev("item_id", ""), stream.ReasonMissingField, false, ""},
	{"cart with null item", ev("type", `"cart"`, "item_id", `null`), stream.ReasonMissingField, false, ""},
	{"review without item", ev("type", `"review"`, "item_id", `""`), stream.ReasonMissingField, false, ""},
	{"purchase without price", ev("type", `"purchase"`), stream.ReasonMissingField, false, ""},
	{"purchase null price", ev("type", `"purchase"`, "price", `null`), stream.ReasonMissingField, false, ""},
	{"purchase without item", ev("type", `"purchase"`, "price", `1`, "item_id", ""), stream.ReasonMissingField, false, ""},
	{"search without query", ev("type", `"search"`), stream.ReasonMissingField, false, ""},
	{"search blank query", ev("type", `"search"`, "query", `"\t \u00a0\u2003\u3000\n"`), stream.ReasonMissingField, false, ""},
	{"identify without anonymous", ev("type", `"identify"`), stream.ReasonMissingField, false, ""},
	{"consent without consent", ev("type", `"consent"`), stream.ReasonMissingField, false, ""},
	{"consent empty", ev("type", `"consent"`, "consent", `{"email":true}`), stream.ReasonMissingField, false, ""},
	{"consent flags null", ev("type", `"consent"`, "consent", `{"ads":null}`), stream.ReasonMissingField, false, ""},
	{"consent flag string", ev("type", `"consent"`, "consent", `{"ads":"yes"}`), stream.ReasonBadField, false, ""},
	{"consent array", ev("consent", `[]`), stream.ReasonBadField, false, ""},
	{"negative price", ev("price", `-0.01`), stream.ReasonNegativePrice, false, ""},
	{"price above limit", ev("price", `1000000000.5`), stream.ReasonBadField, false, ""},
	{"price 1e400", ev("price", `1e400`), stream.ReasonBadField, false, ""},
	{"price string", ev("price", `"1"`), stream.ReasonBadField, false, ""},
	{"quantity 0", ev("quantity", `0`), stream.ReasonBadField, false, ""},
	{"quantity above limit", ev("quantity", `10001`), stream.ReasonBadField, false, ""},
	{"quantity fraction", ev("quantity", `1.5`), stream.ReasonBadField, false, ""},
	{"quantity 1e30", ev("quantity", `1e30`), stream.ReasonBadField, false, ""},
	{"brand too long", ev("brand", `"`+strings.Repeat("b", 1025)+`"`), stream.ReasonBadField, false, ""},
	{"currency too long", ev("currency", `"`+strings.Repeat("c", 17)+`"`), stream.ReasonBadField, false, ""},
	{"text too long", ev("text", `"`+strings.Repeat("t", 4097)+`"`), stream.ReasonBadField, false, ""},
	{"brand number", ev("brand", `1`), stream.ReasonBadField, false, ""},
	// Go's encoding/json matches names case-insensitively, so these are
	// the real fields to the decoder; the schema rejects such names.
	{"case-folded price", ev("Price", `-1`), stream.ReasonNegativePrice, false, ""},
	{"case-folded schema", ev("schema", "", "SCHEMA", `2`), stream.ReasonUnknownSchema, false, ""},
	{"long-s folded ts", ev("t\u017f", `"x"`), stream.ReasonBadTime, false, ""},
	{"case-folded consent flag", ev("type", `"consent"`, "consent", `{"Ads":"no"}`), stream.ReasonBadField, false, ""},

	// The decoder rejects, the schema cannot.
	{"far future", ev("ts", strconv.Quote(now.Add(time.Hour+time.Second).Format(time.RFC3339))), stream.ReasonFutureTime, true,
		"the limit is relative to the consumer's clock (now + Limits.MaxFuture); a static schema has no clock"},
	{"too large", ev("pad", `"`+strings.Repeat("p", 64<<10)+`"`), stream.ReasonTooLarge, true,
		"JSON Schema cannot bound the encoded size of a whole value"},
	{"length in bytes", ev("brand", `"`+strings.Repeat("\u00e9", 600)+`"`), stream.ReasonBadField, true,
		"maxLength counts characters; the decoder counts UTF-8 bytes (600 é = 1200 bytes)"},
	{"schema 1.0", ev("schema", `1.0`), stream.ReasonBadField, true,
		"JSON Schema compares numbers by value (1.0 is the integer 1); Go's decoder rejects a fraction in an int field"},
	{"quantity 2.0", ev("quantity", `2.0`), stream.ReasonBadField, true,
		"as above: 2.0 is an integer to JSON Schema"},
	{"before 1970 only in UTC", ev("ts", `"1970-01-01T00:30:00+01:00"`), stream.ReasonBadTime, true,
		"the pattern checks the written year; 00:30+01:00 on 1970-01-01 is 1969 in UTC"},

	// The schema is stricter than the decoder (producers should not rely
	// on these decoder leniencies).
	{"case-folded unknown field", ev("Brand", `"x"`), "", false, ""},
	{"comma fraction", ev("ts", `"2019-10-01T00:00:00,5Z"`), "", false, ""},
	{"offset +24:00", ev("ts", `"2019-10-01T00:00:00+24:00"`), "", false, ""},
}

// TestSchemaAgreesWithDecoder checks both verdicts for every row; rows where
// the decoder rejects and the schema accepts must say why.
func TestSchemaAgreesWithDecoder(t *testing.T) {
	sch := compile(t)
	dec := stream.NewDecoder(stream.Limits{}, func() time.Time { return now })
	reasons := map[stream.Reason]bool{}
	for _, a := range agreements {
		t.Run(a.name, func(t *testing.T) {
			_, derr := dec.Decode([]byte(a.in))
			var de *stream.DecodeError
			switch {
			case a.reason == "" && derr != nil:
				t.Fatalf("decoder rejects: %v", derr)
			case a.reason != "" && (!errors.As(derr, &de) || de.Reason != a.reason):
				t.Fatalf("decoder: %v, want %s", derr, a.reason)
			}
			serr := validate(sch, []byte(a.in))
			if (serr == nil) != a.schemaOK {
				t.Fatalf("schema verdict %v, want ok=%v for %.200s", serr, a.schemaOK, a.in)
			}
			if a.reason != "" && a.schemaOK && a.why == "" {
				t.Fatalf("decoder rejects (%s) but the schema accepts, and no reason is given", a.reason)
			}
			if a.reason != "" {
				reasons[a.reason] = true
			}
		})
	}
	for _, r := range []stream.Reason{stream.ReasonMalformed, stream.ReasonTooLarge, stream.ReasonUnknownSchema,
		stream.ReasonMissingField, stream.ReasonBadField, stream.ReasonBadTime, stream.ReasonFutureTime, stream.ReasonNegativePrice} {
		if !reasons[r] && !t.Failed() {
			t.Errorf("no row covers decoder reason %s", r)
		}
	}
}

// TestRandomEventsAgree: random valid events (as stream.Encode writes them)
// pass the schema, and random single-field corruptions are rejected by the
// schema whenever the decoder rejects them for a reason the schema can see.
func TestRandomEventsAgree(t *testing.T) {
	sch := compile(t)
	dec := stream.NewDecoder(stream.Limits{}, func() time.Time { return now })
	rng := rand.New(rand.NewPCG(7, 8))
	corruptions := []string{`null`, `""`, `" "`, `-1`, `0`, `1.5`, `1e10`, `true`, `{}`, `[]`, `"x"`, `"2019-10-01T00:00:00Z"`, `"view"`, `"search"`, `"purchase"`, `"consent"`, `"identify"`, `{"ads":true}`}
	fieldNames := []string{"schema", "event_id", "type", "user_id", "anonymous_id", "ts", "session_id", "item_id", "category", "brand", "price", "quantity", "currency", "query", "text", "consent"}
	for i := range 3000 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev()), &m); err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.IntN(3) {
			f := fieldNames[rng.IntN(len(fieldNames))]
			if rng.IntN(5) == 0 {
				delete(m, f)
			} else {
				m[f] = json.RawMessage(corruptions[rng.IntN(len(corruptions))])
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		_, derr := dec.Decode(b)
		serr := validate(sch, b)
		if derr != nil && serr == nil {
			t.Fatalf("case %d: decoder rejects (%v) but schema accepts %s", i, derr, b)
		}
		if derr == nil && serr != nil {
			t.Fatalf("case %d: decoder accepts but schema rejects %s: %v", i, b, serr)
		}
	}
}

// TestFoldGuard: the propertyNames pattern matches exactly the names that
// Go's encoding/json would map onto a schema field (bytes.EqualFold).
func TestFoldGuard(t *testing.T) {
	src, err := schema.Source(schema.ClickstreamV1)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties map[string]struct {
			PropertyNames struct {
				If struct{ Pattern string } `json:"if"`
			} `json:"propertyNames"`
		} `json:"properties"`
		PropertyNames struct {
			If   struct{ Pattern string } `json:"if"`
			Then struct{ Enum []string }  `json:"then"`
		} `json:"propertyNames"`
	}
	if err := json.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	check := func(pattern string, fields []string) {
		re := regexp.MustCompile(pattern)
		rng := rand.New(rand.NewPCG(9, 10))
		variant := func(s string) string {
			var b strings.Builder
			for _, r := range s {
				switch {
				case r == 's' && rng.IntN(4) == 0:
					b.WriteRune('\u017f')
				case r == 'k' && rng.IntN(4) == 0:
					b.WriteRune('\u212a')
				case rng.IntN(2) == 0:
					b.WriteString(strings.ToUpper(string(r)))
				default:
					b.WriteRune(r)
				}
			}
			return b.String()
		}
		candidates := []string{"", "x", "pricey", "_price", "price_", "ts2", "t", "s", "consents", "user-id", "userid", "item_id "}
		for _, f := range fields {
			for range 20 {
				v := variant(f)
				candidates = append(candidates, v, v+"x", "x"+v, v[:len(v)-1])
			}
		}
		for _, c := range candidates {
			want := false
			for _, f := range fields {
				want = want || bytes.EqualFold([]byte(c), []byte(f))
			}
			if got := re.MatchString(c); got != want {
				t.Errorf("pattern matches %q = %v, EqualFold with a field = %v", c, got, want)
			}
		}
	}
	fields := doc.PropertyNames.Then.Enum
	if len(fields) != len(doc.Properties) {
		t.Fatalf("guard lists %d names, schema has %d properties", len(fields), len(doc.Properties))
	}
	for _, f := range fields {
		if _, ok := doc.Properties[f]; !ok {
			t.Fatalf("guard lists %q, which is not a property", f)
		}
	}
	check(doc.PropertyNames.If.Pattern, fields)
	check(doc.Properties["consent"].PropertyNames.If.Pattern, []string{"profiling", "ads"})
}

// TestSchemaDocumented: the schema and every property (also of consent)
// carry a description; the examples are valid events.
func TestSchemaDocumented(t *testing.T) {
	src, err := schema.Source(schema.ClickstreamV1)
	if err != nil {
		t.Fatal(err)
	}
	type prop struct {
		Description string          `json:"description"`
		Properties  map[string]prop `json:"properties"`
	}
	var doc struct {
		prop
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Description == "" {
		t.Error("schema has no description")
	}
	var walk func(path string, p map[string]prop)
	walk = func(path string, p map[string]prop) {
		for name, sub := range p {
			if sub.Description == "" {
				t.Errorf("property %s%s has no description", path, name)
			}
			walk(path+name+".", sub.Properties)
		}
	}
	walk("", doc.Properties)
	sch := compile(t)
	dec := stream.NewDecoder(stream.Limits{}, func() time.Time { return now })
	if len(doc.Examples) == 0 {
		t.Error("schema has no examples")
	}
	for _, ex := range doc.Examples {
		if err := validate(sch, ex); err != nil {
			t.Errorf("example %s: %v", ex, err)
		}
		if _, err := dec.Decode(ex); err != nil {
			t.Errorf("example %s: decoder: %v", ex, err)
		}
	}
}
