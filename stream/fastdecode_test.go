package stream_test

import (
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// fastCases probe the edges of the decoder's fast path: each is either
// taken by it (and must then decode as encoding/json does) or left to
// encoding/json (fast false).
var fastCases = []struct {
	name string
	in   string
	fast bool
}{
	{"plain event", ev(), true},
	{"white space everywhere", " {\t\"schema\" :\n1 ,\r\"event_id\": \"e\" , \"type\":\"view\"}\n", true},
	{"empty object", `{}`, true},
	{"empty object with space", `{ }`, true},
	{"every field", ev("anonymous_id", `"a"`, "session_id", `"s"`, "category", `"c.d"`, "brand", `"b"`, "price", `1.5e2`,
		"quantity", `3`, "currency", `"USD"`, "query", `"q"`, "text", `"t"`), true},
	{"unknown scalar fields", ev("x", `"y"`, "n", `-1.5E-3`, "t", `true`, "f", `false`, "z", `null`), true},
	{"null known fields", ev("price", `null`, "quantity", `null`, "brand", `null`), true},
	{"unicode string", ev("brand", `"Zoë 日本 🙂"`), true},
	{"unknown type name", ev("type", `"teleport"`), true},
	{"negative zero", ev("quantity", `-0`, "price", `-0.0`), true},
	{"big exponent price", ev("price", `1e308`), true},
	{"18-digit quantity", ev("quantity", `123456789012345678`), true},

	{"consent object", ev("type", `"consent"`, "consent", `{"ads":false}`), false},
	{"null consent", ev("consent", `null`), false},
	{"escaped string", ev("brand", `"a\"b"`), false},
	{"unicode escape", ev("brand", `"\u00e9"`), false},
	{"escaped key", `{"sche\u006da":1}`, false},
	{"invalid UTF-8", ev("brand", "\"a\xffb\""), false},
	{"invalid UTF-8 in unknown field", ev("x", "\"a\xffb\""), false},
	{"control byte", ev("brand", "\"a\tb\""), false},
	{"case-folded key", ev("Price", `2`), false},
	{"case-folded key, all caps", ev("EVENT_ID", `"x"`), false},
	{"repeated key", ev() + `,"brand":"a"}`, false},
	{"repeated key, literally", `{"brand":"a","brand":"b"}`, false},
	{"nested unknown object", ev("x", `{"a":1}`), false},
	{"nested unknown array", ev("x", `[1]`), false},
	{"number for a string", ev("brand", `5`), false},
	{"string for a number", ev("price", `"5"`), false},
	{"bool for a string", ev("brand", `true`), false},
	{"fractional quantity", ev("quantity", `1.0`), false},
	{"exponent schema", ev("schema", `1e0`), false},
	{"19-digit quantity", ev("quantity", `1234567890123456789`), false},
	{"price out of range", ev("price", `1e400`), false},
	{"leading zero", ev("price", `01`), false},
	{"bare minus", ev("price", `-`), false},
	{"dot without digits", ev("price", `1.`), false},
	{"exponent without digits", ev("price", `1e+`), false},
	{"plus sign", ev("price", `+1`), false},
	{"truncated literal", ev("x", `nul`), false},
	{"misspelt literal", ev("x", `trux`), false},
	{"trailing comma", `{"schema":1,}`, false},
	{"missing colon", `{"schema" 1}`, false},
	{"unterminated", `{"schema":1`, false},
	{"unterminated string", `{"brand":"abc`, false},
	{"trailing garbage", ev() + `x`, false},
	{"two objects", ev() + ev(), false},
	{"array", `[1]`, false},
	{"non-ASCII key", `{"brånd":"x"}`, false},
}

func TestParseFastEdges(t *testing.T) {
	for _, tc := range fastCases {
		t.Run(tc.name, func(t *testing.T) {
			fast, diff := stream.CheckParseFast([]byte(tc.in))
			if diff != "" {
				t.Fatalf("%s: %s", tc.in, diff)
			}
			if fast != tc.fast {
				t.Fatalf("%s: fast path taken %v, want %v", tc.in, fast, tc.fast)
			}
		})
	}
}

// TestParseFastTakesBundledEvents: every event of the bundled datasets
// takes the fast path, and decodes on it as encoding/json decodes it.
func TestParseFastTakesBundledEvents(t *testing.T) {
	for _, ds := range []struct {
		format source.Format
		name   string
	}{{source.REES46, data.REES46Sample}, {source.CDNOW, data.CDNOWSample}} {
		r, c, err := source.Open(ds.format, source.EmbeddedPrefix+ds.name)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			fast, diff := stream.CheckParseFast(rec.Value)
			if diff != "" || !fast {
				t.Fatalf("%s record %d (%s): fast %v %s", ds.name, n, rec.Value, fast, diff)
			}
			n++
		}
		c.Close()
		if n < 100 {
			t.Fatalf("%s: only %d records", ds.name, n)
		}
	}
}

// FuzzParseFast: whatever the decoder's fast path accepts, encoding/json
// accepts and decodes to the same fields (so Decode's results and errors
// are those of encoding/json alone).
func FuzzParseFast(f *testing.F) {
	seedBundled(f, source.REES46, data.REES46Sample, 40)
	seedBundled(f, source.CDNOW, data.CDNOWSample, 10)
	for _, c := range fastCases {
		f.Add([]byte(c.in))
	}
	for _, c := range badCases {
		f.Add([]byte(c.in))
	}
	for _, c := range goodCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, diff := stream.CheckParseFast(b); diff != "" {
			t.Fatalf("%q: %s", b, diff)
		}
		// As Decode passes them: trimmed.
		if _, diff := stream.CheckParseFast([]byte(strings.TrimSpace(string(b)))); diff != "" {
			t.Fatalf("%q trimmed: %s", b, diff)
		}
	})
}
