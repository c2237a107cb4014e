package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/api"
)

func TestMintToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, digest, err := api.MintToken()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(tok))
		if !regexp.MustCompile(`^spt_[A-Za-z0-9_-]{43}$`).MatchString(tok) || digest != hex.EncodeToString(sum[:]) {
			t.Fatalf("MintToken = %q, %q", tok, digest)
		}
		if seen[tok] {
			t.Fatal("MintToken repeated a token")
		}
		seen[tok] = true
	}
	if got := api.HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashToken(abc) = %s (SHA-256 test vector of FIPS 180-2)", got)
	}
}

func TestParseTokens(t *testing.T) {
	d1, d2 := api.HashToken("one"), api.HashToken("two")
	file := `# API tokens
tokens:
  - name: dashboard
    sha256: ` + d1 + `
    scopes: [profiles:read]
  - name: dpo-tool
    sha256: ` + strings.ToUpper(d2) + `
    scopes: [profiles:read, profiles:erase]
    expires: 2027-01-01T00:00:00Z
`
	specs, err := api.ParseTokens([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0].Name != "dashboard" || specs[1].SHA256 != strings.ToUpper(d2) ||
		!slices.Equal(specs[1].Scopes, []api.Scope{api.ScopeProfilesRead, api.ScopeProfilesErase}) ||
		!specs[1].Expires.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || !specs[0].Expires.IsZero() {
		t.Fatalf("specs %+v", specs)
	}
	// MarshalTokenFile writes what ParseTokens reads.
	out, err := api.MarshalTokenFile(specs)
	if err != nil {
		t.Fatal(err)
	}
	back, err := api.ParseTokens(out)
	if err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	for i := range specs {
		if back[i].Name != specs[i].Name || !strings.EqualFold(back[i].SHA256, specs[i].SHA256) ||
			!slices.Equal(back[i].Scopes, specs[i].Scopes) || !back[i].Expires.Equal(specs[i].Expires) {
			t.Errorf("round trip %d: %+v, want %+v", i, back[i], specs[i])
		}
	}
	for _, empty := range []string{"", "# nothing\n", "tokens: []\n"} {
		if specs, err := api.ParseTokens([]byte(empty)); err != nil || len(specs) != 0 {
			t.Errorf("ParseTokens(%q) = %v, %v", empty, specs, err)
		}
	}
}

func TestParseTokensRejects(t *testing.T) {
	d := api.HashToken("one")
	entry := func(lines ...string) string { return "tokens:\n  - " + strings.Join(lines, "\n    ") + "\n" }
	for _, tc := range []struct {
		name, file string
		line       int
		reason     string
	}{
		{"clear token (the provisional dev format)", entry("name: dev", "token: dev-only-insecure-token", "scopes: [profiles:read]"), 2, "never stored in clear"},
		{"no name", entry("sha256: "+d, "scopes: [admin]"), 2, "name"},
		{"bad name", entry("name: a b", "sha256: "+d, "scopes: [admin]"), 2, "name"},
		{"short digest", entry("name: a", "sha256: abc", "scopes: [admin]"), 2, "sha256"},
		{"non-hex digest", entry("name: a", "sha256: "+strings.Repeat("z", 64), "scopes: [admin]"), 2, "sha256"},
		{"no scopes", entry("name: a", "sha256: "+d), 2, "scopes"},
		{"unknown scope", entry("name: a", "sha256: "+d, "scopes: [profiles:write]"), 2, "unknown scope"},
		{"bad expiry", entry("name: a", "sha256: "+d, "scopes: [admin]", "expires: next week"), 2, "RFC 3339"},
		{"unknown field", entry("name: a", "sha256: "+d, "scope: [admin]"), 0, "scope"},
		{"duplicate name", entry("name: a", "sha256: "+d, "scopes: [admin]") + "  - name: a\n    sha256: " + api.HashToken("two") + "\n    scopes: [admin]\n", 0, "already used"},
		{"duplicate digest", entry("name: a", "sha256: "+d, "scopes: [admin]") + "  - name: b\n    sha256: " + strings.ToUpper(d) + "\n    scopes: [admin]\n", 0, "same sha256"},
		{"not a list", "tokens: {name: a}\n", 0, "expected"},
		{"not YAML", "tokens: [\n", 0, "invalid YAML"},
	} {
		_, err := api.ParseTokens([]byte(tc.file))
		var tfe *api.TokenFileError
		if !errors.As(err, &tfe) || !errors.Is(err, api.ErrInvalidConfig) || tfe.Line != tc.line || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: err = %v, want a TokenFileError at line %d mentioning %q", tc.name, err, tc.line, tc.reason)
			continue
		}
		if strings.Contains(err.Error(), d) || strings.Contains(err.Error(), "insecure-token") {
			t.Errorf("%s: error shows a token or digest: %v", tc.name, err)
		}
	}
}

// The token file shipped for development is in the provisional clear-text
// format; it must be rejected with a message that says how to fix it.
func TestLoadTokenFileRejectsClearTokens(t *testing.T) {
	path := filepath.Join("..", "deploy", "config", "dev", "tokens.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no dev token file: %v", err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "token:") {
		t.Skip("dev token file no longer holds clear tokens")
	}
	_, err := api.LoadTokenFile(path)
	if err == nil || !strings.Contains(err.Error(), "sha256") || !strings.Contains(err.Error(), path) {
		t.Fatalf("LoadTokenFile(%s) = %v", path, err)
	}
}

func TestConfigValidate(t *testing.T) {
	tok := testTokens()[:1]
	for _, tc := range []struct {
		name  string
		cfg   api.Config
		field string // "" valid
	}{
		{"defaults with tokens", api.Config{Tokens: tok}, ""},
		{"token file", api.Config{TokensFile: "x.yaml"}, ""},
		{"no tokens", api.Config{}, "Config.Tokens"},
		{"both token sources", api.Config{TokensFile: "x.yaml", Tokens: tok}, "Config.Tokens"},
		{"invalid token spec", api.Config{Tokens: []api.TokenSpec{{Name: "a", SHA256: "x", Scopes: []api.Scope{api.ScopeAdmin}}}}, "Config.Tokens[0]"},
		{"cert without key", api.Config{Tokens: tok, TLSCertFile: "c.pem"}, "Config.TLSCertFile"},
		{"negative timeout", api.Config{Tokens: tok, RequestTimeout: -time.Second}, "Config.RequestTimeout"},
		{"write timeout below request timeout", api.Config{Tokens: tok, RequestTimeout: 5 * time.Second, WriteTimeout: time.Second}, "Config.WriteTimeout"},
		{"tiny header limit", api.Config{Tokens: tok, MaxHeaderBytes: 10}, "Config.MaxHeaderBytes"},
		{"negative body limit", api.Config{Tokens: tok, MaxBodyBytes: -1}, "Config.MaxBodyBytes"},
		{"page size above max", api.Config{Tokens: tok, DefaultPageSize: 50, MaxPageSize: 10}, "Config.DefaultPageSize"},
		{"rate limit off", api.Config{Tokens: tok, RateLimit: -1}, ""},
	} {
		err := tc.cfg.Validate()
		var ce *api.ConfigError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, api.ErrInvalidConfig)):
			t.Errorf("%s: err = %v, want a ConfigError on %s", tc.name, err, tc.field)
		}
	}
	d := api.Config{}.WithDefaults()
	if d.Addr != ":8080" || d.RequestTimeout != 2*time.Second || d.MaxBodyBytes != 1024 || d.RateLimit != 50 || d.RateBurst != 100 ||
		d.DefaultPageSize != 100 || d.MaxPageSize != 1000 || d.ReadHeaderTimeout != 5*time.Second || d.Logger == nil || d.Now == nil {
		t.Errorf("defaults %+v", d)
	}
}

func TestNewRejects(t *testing.T) {
	clk := &clock{t: t0}
	store := newFakeStore(t, clk)
	all := api.Backends{Profiles: store, Segments: store, Erasures: store}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("tokens:\n  - name: a\n    token: clear\n    scopes: [admin]\n"), 0o600)
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, []byte("tokens: []\n"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  api.Config
		b    api.Backends
	}{
		{"missing backend", api.Config{Tokens: testTokens()}, api.Backends{Profiles: store, Segments: store}},
		{"invalid config", api.Config{}, all},
		{"missing token file", api.Config{TokensFile: filepath.Join(dir, "none.yaml")}, all},
		{"bad token file", api.Config{TokensFile: bad}, all},
		{"empty token file", api.Config{TokensFile: empty}, all},
		{"missing TLS files", api.Config{Tokens: testTokens(), TLSCertFile: filepath.Join(dir, "c"), TLSKeyFile: filepath.Join(dir, "k")}, all},
	} {
		if _, err := api.New(tc.cfg, tc.b); !errors.Is(err, api.ErrInvalidConfig) {
			t.Errorf("%s: New err = %v, want ErrInvalidConfig", tc.name, err)
		}
	}
}

// reloadEnv is a server whose tokens come from a file that accepts
// "token-a"; write replaces the file with "token-b" (b) or, with a nil
// spec, with broken YAML; status answers GET /v1/segments with a token.
type reloadEnv struct {
	*env
	write  func(spec *api.TokenSpec)
	status func(tok string) int
	b      api.TokenSpec
}

func newReloadEnv(t *testing.T) reloadEnv {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(spec *api.TokenSpec) {
		b := []byte("tokens: [\n")
		if spec != nil {
			var err error
			if b, err = api.MarshalTokenFile([]api.TokenSpec{*spec}); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := api.TokenSpec{Name: "a", SHA256: api.HashToken("token-a"), Scopes: []api.Scope{api.ScopeProfilesRead}}
	b := api.TokenSpec{Name: "b", SHA256: api.HashToken("token-b"), Scopes: []api.Scope{api.ScopeProfilesRead}}
	write(&a)
	e := newEnv(t, func(c *api.Config) { c.Tokens, c.TokensFile = nil, path })
	status := func(tok string) int { return e.do(t, "GET", "/v1/segments", tok).Code }
	return reloadEnv{env: e, write: write, status: status, b: b}
}

func TestReloadTokens(t *testing.T) {
	r := newReloadEnv(t)
	e, write, status, b := r.env, r.write, r.status, r.b
	if status("token-a") != 200 || status("token-b") != 401 {
		t.Fatal("initial tokens")
	}
	write(&b)
	if err := e.srv.ReloadTokens(); err != nil {
		t.Fatal(err)
	}
	if status("token-a") != 401 || status("token-b") != 200 {
		t.Fatal("after reload")
	}
	write(nil)
	if err := e.srv.ReloadTokens(); !errors.Is(err, api.ErrInvalidConfig) {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if status("token-b") != 200 {
		t.Fatal("a failed reload dropped the tokens in use")
	}
}

// ReloadTokensOn reloads at each signal until its context ends; a broken
// file keeps the tokens in use.
func TestReloadTokensOnSignal(t *testing.T) {
	r := newReloadEnv(t)
	e, write, status, b := r.env, r.write, r.status, r.b
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal)
	done := make(chan struct{})
	go func() { e.srv.ReloadTokensOn(ctx, hup); close(done) }()
	write(&b)
	hup <- syscall.SIGHUP // unbuffered: received once the reload starts
	waitStatus := func(tok string, want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); status(tok) != want; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %d, want %d", tok, status(tok), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitStatus("token-b", 200)
	waitStatus("token-a", 401)
	write(nil)
	hup <- syscall.SIGHUP
	hup <- syscall.SIGHUP // the first reload (of the broken file) is over
	if status("token-b") != 200 {
		t.Fatal("a failed reload dropped the tokens in use")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ReloadTokensOn did not return after its context ended")
	}
}
