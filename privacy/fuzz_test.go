package privacy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/streamprofile/streamprofile/privacy"
)

var maskSeeds = []string{
	"", "alice@example.com", "call +49 151 12345678", "(555) 123-4567", "1.2.3.4-555-123-4567",
	"fe80::1%eth0", "[2001:db8::1]:443", "2019-10-01 00:00:00 UTC", "72d76fde-8bb3-4e00-8c23-a032dfed738c",
	"2053013555631882655", "35.79 541312140", "a@b.cc@d.ee", "::ffff:1.2.3.4", "(06 12 34 56 78",
	"[redacted:email]", "x@[redacted:ip]", "+1 (555) 123-4567 x@y.zz 10.0.0.1 ::1",
}

// checkMasked checks the properties every MaskString result has.
func checkMasked(t *testing.T, m *privacy.Masker, in, out string, changed bool) {
	t.Helper()
	if changed != (out != in) {
		t.Fatalf("MaskString(%q) = %q, changed=%v", in, out, changed)
	}
	if again, ch := m.MaskString(out); ch || again != out {
		t.Fatalf("not idempotent: %q → %q → %q", in, out, again)
	}
	if k := m.Detect(out); k != 0 {
		t.Fatalf("MaskString(%q) = %q still holds %s", in, out, k)
	}
	if utf8.ValidString(in) && !utf8.ValidString(out) {
		t.Fatalf("MaskString(%q) = %q is not valid UTF-8", in, out)
	}
	// Text outside the items is kept: removing the placeholders from the
	// output leaves a subsequence of the input.
	rest := out
	for _, p := range []string{privacy.PlaceholderEmail, privacy.PlaceholderPhone, privacy.PlaceholderIP} {
		rest = strings.ReplaceAll(rest, p, "")
	}
	if !isSubsequence(rest, in) {
		t.Fatalf("MaskString(%q) = %q changed text outside the items", in, out)
	}
}

func isSubsequence(a, b string) bool {
	j := 0
	for i := 0; i < len(b) && j < len(a); i++ {
		if a[j] == b[i] {
			j++
		}
	}
	return j == len(a)
}

func FuzzMaskString(f *testing.F) {
	for _, s := range maskSeeds {
		f.Add(s)
	}
	m := newMasker(f)
	f.Fuzz(func(t *testing.T, s string) {
		out, changed := m.MaskString(s)
		checkMasked(t, m, s, out, changed)
	})
}

func FuzzMaskJSON(f *testing.F) {
	for _, s := range maskSeeds {
		b, _ := json.Marshal(map[string]any{"v": s, s: []any{s, 1.5, nil, true}})
		f.Add(b)
	}
	f.Add([]byte(`{"a":"b\u0040c.de","n":5551234567}`))
	f.Add([]byte(`[1, "2", {"3": "4.5.6.7"}]`))
	f.Add([]byte(`not json 1.2.3.4`))
	m := newMasker(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := bytes.Clone(raw)
		out, changed, err := m.MaskJSON(raw)
		if !bytes.Equal(in, raw) {
			t.Fatal("MaskJSON modified its input")
		}
		if !json.Valid(raw) {
			if !errors.Is(err, privacy.ErrInvalidJSON) {
				t.Fatalf("MaskJSON(%q) err = %v, want ErrInvalidJSON", raw, err)
			}
			p, pchanged := m.MaskPayload(raw)
			if pchanged == bytes.Equal(p, raw) {
				t.Fatalf("MaskPayload(%q) = %q, changed=%v", raw, p, pchanged)
			}
			return
		}
		if err != nil {
			t.Fatalf("MaskJSON(%s): %v", raw, err)
		}
		if !json.Valid(out) {
			t.Fatalf("MaskJSON(%s) = %s is not valid JSON", raw, out)
		}
		if changed == bytes.Equal(out, raw) {
			t.Fatalf("MaskJSON(%s) = %s, changed=%v", raw, out, changed)
		}
		if again, ch, err := m.MaskJSON(out); err != nil || ch || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %s → %s → %s", raw, out, again)
		}
		if p, _ := m.MaskPayload(raw); !bytes.Equal(p, out) {
			t.Fatalf("MaskPayload(%s) = %s, MaskJSON = %s", raw, p, out)
		}
		// Same structure: decoding both gives the same tree except for
		// masked string values, each of which is what MaskString makes of
		// the original.
		compareMasked(t, m, decodeNumbers(t, raw), decodeNumbers(t, out))
	})
}

// decodeNumbers decodes JSON keeping numbers as text (json.Number), so that
// numbers beyond float64 compare too.
func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func compareMasked(t *testing.T, m *privacy.Masker, a, b any) {
	t.Helper()
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			t.Fatalf("object %v became %v", a, b)
		}
		for k, x := range av {
			y, ok := bv[k]
			if !ok {
				t.Fatalf("key %q lost", k)
			}
			compareMasked(t, m, x, y)
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			t.Fatalf("array %v became %v", a, b)
		}
		for i := range av {
			compareMasked(t, m, av[i], bv[i])
		}
	case string:
		want, _ := m.MaskString(av)
		if b != want {
			t.Fatalf("string %q became %q, want %q", av, b, want)
		}
		if k := m.Detect(want); k != 0 {
			t.Fatalf("string %q still holds %s", want, k)
		}
	default:
		if a != b {
			t.Fatalf("value %v became %v", a, b)
		}
	}
}

func FuzzParseKeys(f *testing.F) {
	f.Add([]byte("k1:" + strings.Repeat("A", 44) + "\n"))
	f.Add([]byte("keys:\n  - id: k1\n    secret: " + strings.Repeat("A", 44) + "\n"))
	f.Add([]byte("# c\n\nk1:abc\n"))
	f.Add([]byte("keys: [1, 2]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := privacy.ParseKeys(b)
		if err != nil {
			var kfe *privacy.KeyFileError
			if !errors.As(err, &kfe) || !errors.Is(err, privacy.ErrInvalidKey) && !errors.Is(err, privacy.ErrNoKeys) {
				t.Fatalf("ParseKeys error %v (%T) is not a KeyFileError", err, err)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
		if _, err := privacy.New(keys); err != nil {
			t.Fatalf("parsed keys rejected by New: %v", err)
		}
	})
}
