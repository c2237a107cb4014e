package privacy_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/privacy"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

func newMasker(t testing.TB) *privacy.Masker {
	t.Helper()
	m, err := privacy.NewMasker(privacy.MaskerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMaskStringMasks(t *testing.T) {
	m := newMasker(t)
	for _, tc := range []struct{ in, want string }{
		// e-mail
		{"alice@example.com", "[redacted:email]"},
		{"mail a.b+tag@sub.example.co.uk today", "mail [redacted:email] today"},
		{"<bob_99@host-1.example.org>", "<[redacted:email]>"},
		{"x@y.io,z@w.io", "[redacted:email],[redacted:email]"},
		{"a@b.cc@d.ee", "[redacted:email]@d.ee"},
		// phone: E.164 and national formats
		{"+4915112345678", "[redacted:phone]"},
		{"call +49 151 12345678 now", "call [redacted:phone] now"},
		{"+1 (555) 123-4567", "[redacted:phone]"},
		{"(555) 123-4567", "[redacted:phone]"},
		{"555-123-4567", "[redacted:phone]"},
		{"555.123.4567", "[redacted:phone]"},
		{"555 123 4567.", "[redacted:phone]."},
		{"555-1234", "[redacted:phone]"},
		{"06 12 34 56 78", "[redacted:phone]"},
		{"06.12.34.56.78", "[redacted:phone]"},
		{"+33 6 12 34 56 78", "[redacted:phone]"},
		{"+44 (0)20 7946 0958", "[redacted:phone]"},
		{"020 7946 0958", "[redacted:phone]"},
		{"0151 12345678", "[redacted:phone]"},
		{"030 1234567", "[redacted:phone]"},
		{"tel:+4930123456", "tel:[redacted:phone]"},
		{"Phone: 555-123-4567, fax: 555-123-4568", "Phone: [redacted:phone], fax: [redacted:phone]"},
		{"on 01.10.2019 555 123 4567", "on 01.10.2019 [redacted:phone]"},
		{"1.2.3.4 555-123-4567", "[redacted:ip] [redacted:phone]"},
		{"(555 123-4567", "([redacted:phone]"},
		{"(see 06 12 34 56 78)", "(see [redacted:phone])"},
		// IPv4
		{"192.168.0.1", "[redacted:ip]"},
		{"from 10.0.0.1:8080 to", "from [redacted:ip]:8080 to"},
		{"ip=255.255.255.255.", "ip=[redacted:ip]."},
		{"010.000.000.001", "[redacted:ip]"},
		// IPv6
		{"2001:db8::1", "[redacted:ip]"},
		{"::1", "[redacted:ip]"},
		{"fe80::1%eth0", "[redacted:ip]%eth0"},
		{"[2001:db8::1]:443", "[[redacted:ip]]:443"},
		{"::ffff:192.0.2.1", "[redacted:ip]"},
		{"peer 2001:0db8:85a3:0000:0000:8a2e:0370:7334 left", "peer [redacted:ip] left"},
		{"refused fe80::1: retry", "refused [redacted:ip]: retry"},
		// an item exposed by masking its neighbour is masked too
		{"1.2.3.4-555-123-4567", "[redacted:ip]-[redacted:phone]"},
		// mixed
		{"bob@x.com 10.1.2.3 +14155550100", "[redacted:email] [redacted:ip] [redacted:phone]"},
	} {
		got, changed := m.MaskString(tc.in)
		if got != tc.want || !changed {
			t.Errorf("MaskString(%q) = %q, %v; want %q, true", tc.in, got, changed, tc.want)
		}
	}
}

func TestMaskStringKeeps(t *testing.T) {
	m := newMasker(t)
	for _, in := range []string{
		"", "hello world", "samsung galaxy s10 2019",
		// ids, prices, timestamps
		"1004237", "26300111", "2053013555631882655", "1569888000", "1569888000123",
		"35.79", "0.00", "1,234.56", "12345.67", "1234567.89", "+3.14159265",
		"2019-10-01 00:00:00 UTC", "2019-10-01T00:00:00Z", "2019-10-01T00:00:00.123+02:00",
		"01.10.2019", "10/01/2019", "12:30:45", "12:30:45.123",
		// UUIDs and codes glued to words
		"72d76fde-8bb3-4e00-8c23-a032dfed738c", "abcdef12-abcd-4123-8123-abcdef123456",
		"12345678-1234-1234-1234-123456789012", "SKU-123-4567", "order#A-555-123-4567",
		// numbers that are not phone numbers
		"1000-2000", "100-2000", "1.234.567", "1 234 567", "35.79 541312140",
		"10.0.19041", "Chrome/118.0.5993.117", "v1.2.3.4", "1.2.3.4.5", "256.1.1.1",
		"+123456", "555-123",
		// not addresses
		"@handle", "a@b", "foo@localhost", "x@y.c", "user@domain.c0m", "std::vector", "a:b:c",
		"00:1a:2b:3c:4d:5e", "::", "deadbeef:cafe:babe",
	} {
		if got, changed := m.MaskString(in); got != in || changed {
			t.Errorf("MaskString(%q) = %q, %v; want it unchanged", in, got, changed)
		}
	}
}

func TestMaskerKinds(t *testing.T) {
	const in = "a@b.co 1.2.3.4 555-123-4567"
	for _, tc := range []struct {
		kinds privacy.Kind
		want  string
	}{
		{privacy.KindEmail, "[redacted:email] 1.2.3.4 555-123-4567"},
		{privacy.KindIP, "a@b.co [redacted:ip] 555-123-4567"},
		{privacy.KindPhone, "a@b.co 1.2.3.4 [redacted:phone]"},
		{privacy.KindEmail | privacy.KindPhone, "[redacted:email] 1.2.3.4 [redacted:phone]"},
		{0, "[redacted:email] [redacted:ip] [redacted:phone]"}, // default: all
	} {
		m, err := privacy.NewMasker(privacy.MaskerConfig{Kinds: tc.kinds})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := m.MaskString(in); got != tc.want {
			t.Errorf("kinds %s: MaskString = %q, want %q", tc.kinds, got, tc.want)
		}
	}
	m := newMasker(t)
	if k := m.Detect(in); k != privacy.AllKinds {
		t.Errorf("Detect = %s, want %s", k, privacy.AllKinds)
	}
	if k := m.Detect("nothing here 12"); k != 0 {
		t.Errorf("Detect = %s, want none", k)
	}
}

func TestMaskerMinPhoneDigits(t *testing.T) {
	m, err := privacy.NewMasker(privacy.MaskerConfig{MinPhoneDigits: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, changed := m.MaskString("555-123-456"); changed {
		t.Error("9 digits masked with MinPhoneDigits 10")
	}
	if _, changed := m.MaskString("555-123-4567"); !changed {
		t.Error("10 digits not masked with MinPhoneDigits 10")
	}
}

func TestMaskerConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg privacy.MaskerConfig
		ok  bool
	}{
		{privacy.MaskerConfig{}, true},
		{privacy.MaskerConfig{Kinds: privacy.KindIP, MinPhoneDigits: 15}, true},
		{privacy.MaskerConfig{MinPhoneDigits: 4}, false},
		{privacy.MaskerConfig{MinPhoneDigits: 16}, false},
		{privacy.MaskerConfig{Kinds: 0x80}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, privacy.ErrInvalidConfig) {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
		if _, err := privacy.NewMasker(tc.cfg); (err == nil) != tc.ok {
			t.Errorf("%+v: NewMasker err = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[privacy.Kind]string{
		0: "none", privacy.KindEmail: "email", privacy.KindPhone | privacy.KindIP: "phone|ip",
		privacy.AllKinds: "email|phone|ip", 0x81: "email|0x80",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

// TestREES46NothingMasked: no field, line or event of the bundled REES46
// slice (ids, 19-digit category ids, prices, timestamps, UUID sessions) is
// taken for personal data.
func TestREES46NothingMasked(t *testing.T) {
	m := newMasker(t)
	rc, err := data.Open(data.REES46Sample)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	seen := map[string]bool{}
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		lines++
		check := func(what, s string) {
			if got, changed := m.MaskString(s); changed {
				t.Errorf("line %d: %s %q masked to %q", lines, what, s, got)
			}
		}
		check("line", line)
		check("line with spaces", strings.ReplaceAll(line, ",", ", "))
		for _, f := range strings.Split(line, ",") {
			if !seen[f] {
				seen[f] = true
				check("field", f)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != 17435 {
		t.Fatalf("read %d lines, want 17435", lines)
	}

	rc2, err := data.Open(data.REES46Sample)
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	r, err := source.NewReader(source.REES46, data.REES46Sample, rc2)
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		events++
		ev := rec.Event
		if res := m.DropPII(&ev); res.Found() {
			t.Errorf("event %s: DropPII found %s (masked %s, dropped %s)", ev.EventID, res.Kinds, res.Masked, res.Dropped)
		}
		out, changed, err := m.MaskJSON(rec.Value)
		if err != nil || changed || string(out) != string(rec.Value) {
			t.Errorf("event %s: MaskJSON changed %s to %s (%v)", ev.EventID, rec.Value, out, err)
		}
	}
	if events != 17434 {
		t.Fatalf("read %d events, want 17434", events)
	}
}

func TestMaskJSON(t *testing.T) {
	m := newMasker(t)
	for _, tc := range []struct{ in, want string }{
		{`{"a":"x@y.com"}`, `{"a":"[redacted:email]"}`},
		// keys kept, numbers kept, structure and whitespace kept
		{`{"bob@x.com": "bob@x.com", "n": 5551234567, "f": 1.5e3 }`,
			`{"bob@x.com": "[redacted:email]", "n": 5551234567, "f": 1.5e3 }`},
		{`["1.2.3.4", ["::1", {"k": ["555-123-4567"]}], null, true]`,
			`["[redacted:ip]", ["[redacted:ip]", {"k": ["[redacted:phone]"]}], null, true]`},
		{`"top level a@b.co"`, `"top level [redacted:email]"`},
		// escapes are decoded before detection: \u0040 is '@'
		{`{"e":"bob\u0040x.com"}`, `{"e":"[redacted:email]"}`},
		// other escapes of a masked string are re-encoded as needed
		{`{"e":"line\nbob@x.com \"q\" \u00e9"}`, `{"e":"line\n[redacted:email] \"q\" é"}`},
		// a string without personal data keeps its bytes, escapes included
		{`{"t":"caf\u00e9 \/ 2019-10-01T00:00:00Z"}`, `{"t":"caf\u00e9 \/ 2019-10-01T00:00:00Z"}`},
		// commas and colons inside strings do not confuse keys and values
		{`{"a,b:c":"d@e.fg","x":{"y:z,":"1.2.3.4"}}`, `{"a,b:c":"[redacted:email]","x":{"y:z,":"[redacted:ip]"}}`},
	} {
		want := tc.want
		got, changed, err := m.MaskJSON([]byte(tc.in))
		if err != nil || string(got) != want || changed != (want != tc.in) {
			t.Errorf("MaskJSON(%s) = %s, %v, %v; want %s", tc.in, got, changed, err, want)
		}
	}
	for _, bad := range []string{"", "{", `{"a":}`, `"unterminated`, "nul\x00", `{"a":"b"}x`} {
		if _, _, err := m.MaskJSON([]byte(bad)); !errors.Is(err, privacy.ErrInvalidJSON) {
			t.Errorf("MaskJSON(%q) err = %v, want ErrInvalidJSON", bad, err)
		}
	}
}

func TestMaskPayload(t *testing.T) {
	m := newMasker(t)
	for _, tc := range []struct{ in, want string }{
		{`{"user":"a@b.co","n":1}`, `{"user":"[redacted:email]","n":1}`},
		{`{"user":"a@b.co",`, `{"user":"[redacted:email]",`}, // not JSON: masked as text
		{"plain 10.0.0.1 \xff", "plain [redacted:ip] \xff"},  // bytes outside items kept
		{`{"n":"nothing"}`, `{"n":"nothing"}`},
		{"", ""},
	} {
		got, changed := m.MaskPayload([]byte(tc.in))
		if string(got) != tc.want || changed != (tc.want != tc.in) {
			t.Errorf("MaskPayload(%q) = %q, %v; want %q", tc.in, got, changed, tc.want)
		}
	}
}

func TestDropPII(t *testing.T) {
	m := newMasker(t)
	price := 9.99
	base := stream.Event{
		Schema: 1, EventID: "e-1", Type: stream.TypeSearch, UserID: "u@example.com", AnonymousID: "10.0.0.1",
		SessionID: "s-1", ItemID: "1004237", Category: "electronics.smartphone", Brand: "samsung",
		Currency: "USD", Query: "galaxy s10", Text: "", Price: &price, Quantity: 1,
	}
	for _, tc := range []struct {
		name    string
		edit    func(*stream.Event)
		want    func(*stream.Event)
		masked  privacy.Field
		dropped privacy.Field
		kinds   privacy.Kind
	}{
		{name: "clean", edit: func(*stream.Event) {}, want: func(*stream.Event) {}},
		{name: "query masked",
			edit:   func(e *stream.Event) { e.Query = "case for phone of bob@x.com" },
			want:   func(e *stream.Event) { e.Query = "case for phone of [redacted:email]" },
			masked: privacy.FieldQuery, kinds: privacy.KindEmail},
		{name: "query that is only an item dropped",
			edit:    func(e *stream.Event) { e.Query = "  +49 151 12345678 " },
			want:    func(e *stream.Event) { e.Query = "" },
			dropped: privacy.FieldQuery, kinds: privacy.KindPhone},
		{name: "text masked, two kinds",
			edit:   func(e *stream.Event) { e.Text = "call 555-123-4567 or mail a@b.co" },
			want:   func(e *stream.Event) { e.Text = "call [redacted:phone] or mail [redacted:email]" },
			masked: privacy.FieldText, kinds: privacy.KindPhone | privacy.KindEmail},
		{name: "categorical fields dropped, whole or part",
			edit: func(e *stream.Event) {
				e.Brand = "shop@example.com"
				e.ItemID = "item for 192.168.1.1"
				e.SessionID = "555-123-4567"
			},
			want:    func(e *stream.Event) { e.Brand, e.ItemID, e.SessionID = "", "", "" },
			dropped: privacy.FieldBrand | privacy.FieldItemID | privacy.FieldSessionID, kinds: privacy.KindEmail | privacy.KindIP | privacy.KindPhone},
		{name: "category and currency dropped",
			edit:    func(e *stream.Event) { e.Category, e.Currency = "a@b.cd", "::1" },
			want:    func(e *stream.Event) { e.Category, e.Currency = "", "" },
			dropped: privacy.FieldCategory | privacy.FieldCurrency, kinds: privacy.KindEmail | privacy.KindIP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, want := base, base
			tc.edit(&ev)
			tc.want(&want)
			res := m.DropPII(&ev)
			if ev != want {
				t.Errorf("event = %+v\nwant    %+v", ev, want)
			}
			if res.Masked != tc.masked || res.Dropped != tc.dropped || res.Kinds != tc.kinds {
				t.Errorf("DropPII = masked %q dropped %q kinds %s; want %q %q %s",
					res.Masked, res.Dropped, res.Kinds, tc.masked, tc.dropped, tc.kinds)
			}
			if res.Found() != (tc.kinds != 0) {
				t.Errorf("Found() = %v", res.Found())
			}
		})
	}
	// Identifiers are never touched, even when they hold personal data.
	ev := base
	m.DropPII(&ev)
	if ev.UserID != base.UserID || ev.AnonymousID != base.AnonymousID || ev.EventID != base.EventID {
		t.Errorf("identifiers changed: %+v", ev)
	}
}

func TestFieldString(t *testing.T) {
	if got := (privacy.FieldQuery | privacy.FieldSessionID).String(); got != "session_id,query" {
		t.Errorf("String() = %q", got)
	}
	if got := privacy.Field(0).String(); got != "" {
		t.Errorf("String() = %q", got)
	}
}

// piiItems and fillers build random texts for the property test: every
// item must be masked whatever surrounds it (the fillers end in a space or
// punctuation, so no item is glued to a word), and the fillers must
// survive.
var piiItems = []struct {
	kind privacy.Kind
	gen  func(r *rand.Rand) string
}{
	{privacy.KindEmail, func(r *rand.Rand) string {
		return word(r, 1+r.IntN(8)) + "@" + word(r, 1+r.IntN(6)) + "." + []string{"com", "org", "io", "co.uk"}[r.IntN(4)]
	}},
	{privacy.KindPhone, func(r *rand.Rand) string {
		return []string{"+49 151 ", "+1 (555) ", "(030) ", "555-", "06 12 "}[r.IntN(5)] + digits(r, 3) + "-" + digits(r, 4)
	}},
	{privacy.KindIP, func(r *rand.Rand) string {
		return []string{"10.0.", "192.168.", "172.16."}[r.IntN(3)] + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(r.IntN(256))
	}},
	{privacy.KindIP, func(r *rand.Rand) string {
		return []string{"2001:db8::", "fe80::", "::ffff:"}[r.IntN(3)] + []string{"1", "abcd", "10:20"}[r.IntN(3)]
	}},
}

var fillers = []string{"buy ", "size 42, ", "price 35.79, ", "on 2019-10-01 ", "id 2053013555631882655; ", "(", ") ", "ok: ", "\"", "é "}

func word(r *rand.Rand, n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func TestMaskProperty(t *testing.T) {
	m := newMasker(t)
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 2000; iter++ {
		var in, want strings.Builder
		var kinds privacy.Kind
		for k := 0; k < 1+r.IntN(6); k++ {
			f := fillers[r.IntN(len(fillers))]
			in.WriteString(f)
			want.WriteString(f)
			if r.IntN(2) == 0 {
				it := piiItems[r.IntN(len(piiItems))]
				in.WriteString(it.gen(r))
				want.WriteString(map[privacy.Kind]string{privacy.KindEmail: privacy.PlaceholderEmail,
					privacy.KindPhone: privacy.PlaceholderPhone, privacy.KindIP: privacy.PlaceholderIP}[it.kind])
				kinds |= it.kind
				in.WriteString(" ")
				want.WriteString(" ")
			}
		}
		got, changed := m.MaskString(in.String())
		if got != want.String() || changed != (kinds != 0) {
			t.Fatalf("MaskString(%q)\n = %q\nwant %q", in.String(), got, want.String())
		}
		if k := m.Detect(in.String()); k != kinds {
			t.Fatalf("Detect(%q) = %s, want %s", in.String(), k, kinds)
		}
		// The same text as a JSON string value masks the same way.
		doc, _ := json.Marshal(map[string]string{"v": in.String()})
		out, _, err := m.MaskJSON(doc)
		var back map[string]string
		if err != nil || json.Unmarshal(out, &back) != nil || back["v"] != want.String() {
			t.Fatalf("MaskJSON(%s) = %s, %v", doc, out, err)
		}
	}
}
