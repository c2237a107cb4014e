package privacy_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/streamprofile/streamprofile/privacy"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, privacy.MinSecretLen) }

func seqSecret() []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

func mustNew(t testing.TB, keys ...privacy.Key) *privacy.Pseudonymizer {
	t.Helper()
	p, err := privacy.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var pseudonymRE = regexp.MustCompile(`^p1[A-Za-z0-9_-]{1,16}:[a-z2-7]{32}$`)

// TestPseudonymKnownAnswer pins the documented format with vectors computed
// by an independent implementation (Python's hmac module):
// "p1" + keyID + ":" + base32lower(HMAC-SHA256(secret, "streamprofile/pseudonym/v1\x00" + id)[:20]).
func TestPseudonymKnownAnswer(t *testing.T) {
	p := mustNew(t, privacy.Key{ID: "k1", Secret: seqSecret()})
	for id, want := range map[string]string{
		"user-42": "p1k1:cb2w7ijwlnvt432f42l2yg4btebxanuc",
		"":        "p1k1:x424bssvl3fc3ffd7clby7afvdfzwfz2",
	} {
		if got := p.Pseudonym(id); got != want {
			t.Errorf("Pseudonym(%q) = %q, want %q", id, got, want)
		}
	}
}

// TestPseudonymFormula recomputes pseudonyms from the documented formula
// with crypto/hmac for many ids and keys.
func TestPseudonymFormula(t *testing.T) {
	enc := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	for _, key := range []privacy.Key{{ID: "k1", Secret: secret(1)}, {ID: "K_2-x", Secret: bytes.Repeat([]byte("s"), 100)}} {
		p := mustNew(t, key)
		for i := 0; i < 200; i++ {
			id := fmt.Sprintf("user-%d-{}%s", i, strings.Repeat("é", i%7))
			mac := hmac.New(sha256.New, key.Secret)
			mac.Write([]byte("streamprofile/pseudonym/v1\x00" + id))
			want := "p1" + key.ID + ":" + enc.EncodeToString(mac.Sum(nil)[:20])
			got := p.Pseudonym(id)
			if got != want {
				t.Fatalf("Pseudonym(%q) = %q, want %q", id, got, want)
			}
			if !pseudonymRE.MatchString(got) || strings.ContainsAny(got, "{} ") {
				t.Fatalf("Pseudonym(%q) = %q does not match the documented format", id, got)
			}
		}
	}
}

func TestPseudonymProperties(t *testing.T) {
	a := mustNew(t, privacy.Key{ID: "a", Secret: secret(1)})
	a2 := mustNew(t, privacy.Key{ID: "a", Secret: secret(1)})
	b := mustNew(t, privacy.Key{ID: "a", Secret: secret(2)})
	seen := map[string]string{}
	for i := 0; i < 5000; i++ {
		id := fmt.Sprint(i)
		pa := a.Pseudonym(id)
		if pa != a2.Pseudonym(id) {
			t.Fatalf("two Pseudonymizers with one key disagree on %q", id)
		}
		if pa == b.Pseudonym(id) {
			t.Fatalf("different secrets give the same pseudonym for %q", id)
		}
		if prev, dup := seen[pa]; dup {
			t.Fatalf("ids %q and %q share pseudonym %q", prev, id, pa)
		}
		seen[pa] = id
	}
}

func TestCandidatesAndKeyOf(t *testing.T) {
	cur := privacy.Key{ID: "k2", Secret: secret(2)}
	old := privacy.Key{ID: "k1", Secret: secret(1)}
	p := mustNew(t, cur, old)
	pOld := mustNew(t, old)
	if !p.Enabled() || p.CurrentKeyID() != "k2" || fmt.Sprint(p.KeyIDs()) != "[k2 k1]" {
		t.Fatalf("Enabled %v, CurrentKeyID %q, KeyIDs %v", p.Enabled(), p.CurrentKeyID(), p.KeyIDs())
	}
	c := p.Candidates("u1")
	if len(c) != 2 || c[0] != p.Pseudonym("u1") || c[1] != pOld.Pseudonym("u1") {
		t.Fatalf("Candidates = %v; want current then old", c)
	}
	for _, tc := range []struct {
		s, key string
		ok     bool
	}{
		{c[0], "k2", true}, {c[1], "k1", true},
		{"p1k3:" + c[0][len("p1k2:"):], "", false}, // unknown key id
		{c[0][:len(c[0])-1], "", false},            // short digest
		{c[0] + "a", "", false},
		{"p1k2:" + strings.Repeat("A", 32), "", false}, // upper case is not the alphabet
		{"u1", "", false},
	} {
		key, ok := p.KeyOf(tc.s)
		if key != tc.key || ok != tc.ok {
			t.Errorf("KeyOf(%q) = %q, %v; want %q, %v", tc.s, key, ok, tc.key, tc.ok)
		}
	}
}

func TestDisabledIsIdentity(t *testing.T) {
	p := mustNew(t)
	if p.Enabled() || p.CurrentKeyID() != "" || len(p.KeyIDs()) != 0 {
		t.Fatal("a Pseudonymizer without keys reports itself enabled")
	}
	for _, id := range []string{"", "u1", "alice@example.com"} {
		if got := p.Pseudonym(id); got != id {
			t.Errorf("Pseudonym(%q) = %q, want the id", id, got)
		}
		if got := p.Candidates(id); len(got) != 1 || got[0] != id {
			t.Errorf("Candidates(%q) = %q, want [id]", id, got)
		}
	}
	if _, ok := p.KeyOf("p1k1:" + strings.Repeat("a", 32)); ok {
		t.Error("KeyOf matched without keys")
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []privacy.Key
	}{
		{"short secret", []privacy.Key{{ID: "k", Secret: make([]byte, 31)}}},
		{"empty id", []privacy.Key{{ID: "", Secret: secret(1)}}},
		{"id with colon", []privacy.Key{{ID: "a:b", Secret: secret(1)}}},
		{"id with brace", []privacy.Key{{ID: "a{", Secret: secret(1)}}},
		{"long id", []privacy.Key{{ID: strings.Repeat("a", 17), Secret: secret(1)}}},
		{"duplicate id", []privacy.Key{{ID: "k", Secret: secret(1)}, {ID: "k", Secret: secret(2)}}},
	} {
		if _, err := privacy.New(tc.keys); !errors.Is(err, privacy.ErrInvalidKey) {
			t.Errorf("%s: New err = %v, want ErrInvalidKey", tc.name, err)
		}
	}
}

func TestNewCopiesSecret(t *testing.T) {
	s := secret(1)
	p := mustNew(t, privacy.Key{ID: "k", Secret: s})
	before := p.Pseudonym("u")
	s[0] ^= 0xff
	if p.Pseudonym("u") != before {
		t.Error("changing the caller's secret slice changed the pseudonyms")
	}
}

func TestKeyStringHidesSecret(t *testing.T) {
	k := privacy.Key{ID: "k", Secret: []byte("super-secret-value-that-is-32-bytes!")}
	for _, s := range []string{k.String(), fmt.Sprint(k), fmt.Sprintf("%v %+v %#v", k, k, k), fmt.Sprintf("%v", []privacy.Key{k})} {
		if strings.Contains(s, "super-secret") {
			t.Errorf("formatted key shows the secret: %s", s)
		}
	}
}

func TestPseudonymConcurrent(t *testing.T) {
	p := mustNew(t, privacy.Key{ID: "k", Secret: secret(3)})
	want := p.Pseudonym("u-7")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if p.Pseudonym("u-7") != want {
					t.Error("concurrent Pseudonym differs")
					return
				}
			}
		}()
	}
	wg.Wait()
}

const b64Seq = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // bytes 0..31

func TestParseKeys(t *testing.T) {
	long := strings.Repeat("QUJD", 16) // "ABC"×16, 48 bytes
	for _, tc := range []struct {
		name, file string
		ids        []string
	}{
		{"lines", "# pseudonym keys, current first\n\nk2:" + long + "\nk1:" + b64Seq + "\n", []string{"k2", "k1"}},
		{"lines, spaces and no padding", "  k1 : " + strings.TrimRight(b64Seq, "=") + "  \n", []string{"k1"}},
		{"lines, URL alphabet", "k1:" + strings.Repeat("-_-_", 11) + "\n", []string{"k1"}},
		{"yaml", "# keys\nkeys:\n  - id: k2\n    secret: " + long + "\n  - id: k1\n    secret: \"" + b64Seq + "\"\n", []string{"k2", "k1"}},
		{"yaml with document marker", "---\nkeys:\n- {id: a, secret: " + b64Seq + "}\n", []string{"a"}},
	} {
		keys, err := privacy.ParseKeys([]byte(tc.file))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
			if len(k.Secret) < privacy.MinSecretLen {
				t.Errorf("%s: key %s secret %d bytes", tc.name, k.ID, len(k.Secret))
			}
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
			t.Errorf("%s: ids %v, want %v", tc.name, ids, tc.ids)
		}
	}
	keys, err := privacy.ParseKeys([]byte("k1:" + b64Seq))
	if err != nil || !bytes.Equal(keys[0].Secret, seqSecret()) {
		t.Fatalf("secret not decoded: %v %v", keys, err)
	}
}

func TestParseKeysRejects(t *testing.T) {
	short := "c2hvcnQtc2VjcmV0" // "short-secret"
	for _, tc := range []struct {
		name, file string
		line       int
		err        error
	}{
		{"empty", "", 0, privacy.ErrNoKeys},
		{"only comments", "# nothing\n\n", 0, privacy.ErrNoKeys},
		{"yaml without keys", "keys: []\n", 0, privacy.ErrNoKeys},
		{"raw secret, no id", "dev-only-insecure-pseudonym-key-do-not-use-in-production\n", 1, privacy.ErrInvalidKey},
		{"short secret", "# c\nk1:" + short + "\n", 2, privacy.ErrInvalidKey},
		{"not base64", "k1:" + strings.Repeat("!", 44) + "\n", 1, privacy.ErrInvalidKey},
		{"bad id", "a b:" + b64Seq + "\n", 1, privacy.ErrInvalidKey},
		{"duplicate", "k1:" + b64Seq + "\nk1:" + b64Seq + "\n", 2, privacy.ErrInvalidKey},
		{"yaml short secret", "keys:\n  - id: k1\n    secret: " + b64Seq + "\n  - id: k2\n    secret: " + short + "\n", 4, privacy.ErrInvalidKey},
		{"yaml wrong shape", "keys: {id: k1}\n", 0, privacy.ErrInvalidKey},
		{"yaml invalid", "keys:\n  - id: [\n", 0, privacy.ErrInvalidKey},
	} {
		_, err := privacy.ParseKeys([]byte(tc.file))
		var kfe *privacy.KeyFileError
		if !errors.Is(err, tc.err) || !errors.As(err, &kfe) || kfe.Line != tc.line {
			t.Errorf("%s: err = %v, want %v at line %d", tc.name, err, tc.err, tc.line)
			continue
		}
		if strings.Contains(err.Error(), short) || strings.Contains(err.Error(), "insecure-pseudonym") {
			t.Errorf("%s: error shows secret material: %v", tc.name, err)
		}
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pseudonym.key")
	if err := os.WriteFile(path, []byte("k1:"+b64Seq+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := privacy.LoadKeyFile(path)
	if err != nil || len(keys) != 1 || keys[0].ID != "k1" {
		t.Fatalf("LoadKeyFile = %v, %v", keys, err)
	}
	if got := mustNew(t, keys...).Pseudonym("user-42"); got != "p1k1:cb2w7ijwlnvt432f42l2yg4btebxanuc" {
		t.Errorf("pseudonym from loaded key = %q", got)
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("\nk1:c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = privacy.LoadKeyFile(bad)
	if err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Errorf("LoadKeyFile(bad) = %v, want the path and line", err)
	}
	if _, err := privacy.LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadKeyFile(missing) = %v", err)
	}
}
