package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scope is a permission a token carries.
type Scope string

// The scopes. ScopeAdmin implies every other scope.
const (
	ScopeProfilesRead  Scope = "profiles:read"  // read profiles and segments
	ScopeProfilesErase Scope = "profiles:erase" // request erasures and read their receipts
	ScopeAdmin         Scope = "admin"          // everything
)

func (s Scope) valid() bool {
	return s == ScopeProfilesRead || s == ScopeProfilesErase || s == ScopeAdmin
}

// TokenPrefix starts every token MintToken makes, so that secret scanners
// can recognise leaked tokens. Tokens minted elsewhere need not have it.
const TokenPrefix = "spt_"

// MaxTokenLen is the longest bearer token accepted, in bytes.
const MaxTokenLen = 512

// TokenSpec is one accepted API token, as listed in the token file:
//
//	tokens:
//	  - name: dashboard
//	    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	    scopes: [profiles:read]
//	    expires: 2027-01-01T00:00:00Z   # optional, RFC 3339
//
// The token itself is never stored, only the hex SHA-256 of its bytes.
type TokenSpec struct {
	// Name identifies the token in logs and its rate limit: 1 to 64
	// characters of [A-Za-z0-9._-], unique.
	Name string
	// SHA256 is the hex SHA-256 digest of the token (HashToken), unique.
	SHA256 string
	// Scopes are the token's permissions; at least one.
	Scopes []Scope
	// Expires is when the token stops working; zero for never.
	Expires time.Time
}

// tokenFile is the YAML form of a token file.
type tokenFile struct {
	Tokens []tokenEntry `yaml:"tokens"`
}

type tokenEntry struct {
	Name    string   `yaml:"name"`
	SHA256  string   `yaml:"sha256"`
	Scopes  []string `yaml:"scopes,flow"`
	Expires string   `yaml:"expires,omitempty"`
	// Token is only read to reject files that hold tokens in clear.
	Token string `yaml:"token,omitempty"`
}

// LoadTokenFile reads a token file (see TokenSpec). Errors are
// *TokenFileError values that never contain tokens or digests.
func LoadTokenFile(path string) ([]TokenSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &TokenFileError{File: path, Reason: "cannot read: " + err.Error()}
	}
	specs, err := ParseTokens(b)
	if tfe, ok := err.(*TokenFileError); ok {
		tfe.File = path
	}
	return specs, err
}

// ParseTokens parses the contents of a token file and validates every
// entry. An empty list is valid here; New requires at least one token.
func ParseTokens(b []byte) ([]TokenSpec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, &TokenFileError{Reason: "invalid YAML"} // yaml errors may quote a token
	}
	var f tokenFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, &TokenFileError{Reason: "expected \"tokens:\" with a list of {name, sha256, scopes, expires}: " + yamlReason(err)}
	}
	lines := tokenLines(&root)
	specs := make([]TokenSpec, 0, len(f.Tokens))
	for i, e := range f.Tokens {
		fail := func(reason string) error {
			tfe := &TokenFileError{Entry: i + 1, Reason: reason}
			if i < len(lines) {
				tfe.Line = lines[i]
			}
			return tfe
		}
		if e.Token != "" {
			return nil, fail("tokens are never stored in clear: replace \"token\" by \"sha256\", the hex SHA-256 of the token (streamprofile token prints both)")
		}
		spec := TokenSpec{Name: e.Name, SHA256: e.SHA256}
		for _, s := range e.Scopes {
			spec.Scopes = append(spec.Scopes, Scope(s))
		}
		if e.Expires != "" {
			t, err := time.Parse(time.RFC3339, e.Expires)
			if err != nil {
				return nil, fail(fmt.Sprintf("expires %q is not an RFC 3339 time", truncate(e.Expires, 40)))
			}
			spec.Expires = t
		}
		if err := spec.validate(); err != nil {
			return nil, fail(err.Error())
		}
		specs = append(specs, spec)
	}
	if err := checkUnique(specs); err != nil {
		return nil, err
	}
	return specs, nil
}

// yamlReason keeps the field names of a yaml type error and drops quoted
// values, which could be tokens.
func yamlReason(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if i := strings.Index(msg, "`"); i >= 0 {
			msg = msg[:i] + "(value not shown)"
		}
		return msg
	}
	return "invalid structure"
}

// tokenLines returns the line of each item of the top-level "tokens" list.
func tokenLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "tokens" && m.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, it := range m.Content[i+1].Content {
				out = append(out, it.Line)
			}
			return out
		}
	}
	return nil
}

// validate checks one spec; its messages never contain the digest.
func (t TokenSpec) validate() error {
	if !validName(t.Name) {
		return fmt.Errorf("name %q must be 1-64 characters of [A-Za-z0-9._-]", truncate(t.Name, 64))
	}
	if len(t.SHA256) != 2*sha256.Size {
		return fmt.Errorf("token %q: sha256 must be %d hex digits", t.Name, 2*sha256.Size)
	}
	if _, err := hex.DecodeString(t.SHA256); err != nil {
		return fmt.Errorf("token %q: sha256 must be %d hex digits", t.Name, 2*sha256.Size)
	}
	if len(t.Scopes) == 0 {
		return fmt.Errorf("token %q: scopes must list at least one of %s, %s, %s", t.Name, ScopeProfilesRead, ScopeProfilesErase, ScopeAdmin)
	}
	for _, s := range t.Scopes {
		if !s.valid() {
			return fmt.Errorf("token %q: unknown scope %q (want %s, %s or %s)", t.Name, truncate(string(s), 32), ScopeProfilesRead, ScopeProfilesErase, ScopeAdmin)
		}
	}
	return nil
}

func checkUnique(specs []TokenSpec) error {
	names := map[string]int{}
	digests := map[string]int{}
	for i, t := range specs {
		if j, dup := names[t.Name]; dup {
			return &TokenFileError{Entry: i + 1, Reason: fmt.Sprintf("name %q already used by token #%d", t.Name, j+1)}
		}
		names[t.Name] = i
		d := strings.ToLower(t.SHA256)
		if j, dup := digests[d]; dup {
			return &TokenFileError{Entry: i + 1, Reason: fmt.Sprintf("token %q has the same sha256 as token #%d", t.Name, j+1)}
		}
		digests[d] = i
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// MarshalTokenFile renders specs in the token file format (ParseTokens
// reads it back).
func MarshalTokenFile(specs []TokenSpec) ([]byte, error) {
	var f tokenFile
	for _, t := range specs {
		if err := t.validate(); err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		e := tokenEntry{Name: t.Name, SHA256: strings.ToLower(t.SHA256)}
		for _, s := range t.Scopes {
			e.Scopes = append(e.Scopes, string(s))
		}
		if !t.Expires.IsZero() {
			e.Expires = t.Expires.UTC().Format(time.RFC3339)
		}
		f.Tokens = append(f.Tokens, e)
	}
	return yaml.Marshal(&f)
}

// MintToken returns a new random token (TokenPrefix followed by 32 random
// bytes in unpadded base64url) and the hex SHA-256 digest that the token
// file lists for it. Hand the token to the client once; store only the
// digest.
func MintToken() (token, sha256Hex string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("api: mint token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken returns the hex SHA-256 digest of token, as the token file
// lists it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// credential is a parsed TokenSpec.
type credential struct {
	name    string
	digest  [sha256.Size]byte
	scopes  []Scope
	expires time.Time
	limiter *bucket // nil: no rate limit
}

func (c *credential) allows(s Scope) bool {
	return slices.Contains(c.scopes, ScopeAdmin) || slices.Contains(c.scopes, s)
}

// authenticator checks bearer tokens against every configured digest.
type authenticator struct {
	creds []credential
}

// newAuthenticator builds the credentials of specs; limiters are reused from
// prev (by token name) so that reloading tokens does not reset rate limits.
func newAuthenticator(specs []TokenSpec, rate float64, burst int, now time.Time, prev *authenticator) (*authenticator, error) {
	if err := checkUnique(specs); err != nil {
		return nil, err
	}
	a := &authenticator{creds: make([]credential, len(specs))}
	for i, t := range specs {
		if err := t.validate(); err != nil {
			return nil, &TokenFileError{Entry: i + 1, Reason: err.Error()}
		}
		c := &a.creds[i]
		c.name = t.Name
		hex.Decode(c.digest[:], []byte(t.SHA256)) // validated above
		c.scopes = slices.Clone(t.Scopes)
		c.expires = t.Expires
		if rate > 0 {
			if old := prev.find(t.Name); old != nil && old.limiter != nil {
				c.limiter = old.limiter
			} else {
				c.limiter = newBucket(rate, burst, now)
			}
		}
	}
	return a, nil
}

func (a *authenticator) find(name string) *credential {
	if a == nil {
		return nil
	}
	for i := range a.creds {
		if a.creds[i].name == name {
			return &a.creds[i]
		}
	}
	return nil
}

// authResult is the outcome of authenticate.
type authResult int

const (
	authOK authResult = iota
	authMissing
	authMalformed
	authUnknown
	authExpired
)

// authenticate finds the credential of the request's bearer token. The
// token's digest is compared with every configured digest in constant time,
// without stopping at a match, so timing tells nothing about which token
// (if any) matched.
func (a *authenticator) authenticate(r *http.Request, now time.Time) (*credential, authResult) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return nil, authMissing
	}
	if len(vals) > 1 {
		return nil, authMalformed
	}
	token, ok := bearerToken(vals[0])
	if !ok {
		return nil, authMalformed
	}
	digest := sha256.Sum256([]byte(token))
	match := -1
	for i := range a.creds {
		eq := subtle.ConstantTimeCompare(digest[:], a.creds[i].digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return nil, authUnknown
	}
	c := &a.creds[match]
	if !c.expires.IsZero() && !now.Before(c.expires) {
		return c, authExpired
	}
	return c, authOK
}

// bearerToken extracts the token of an RFC 6750 "Bearer <b64token>"
// credential (scheme case-insensitive).
func bearerToken(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	tok := h[len(scheme):]
	if len(tok) > MaxTokenLen {
		return "", false
	}
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	i := 0
	for i < len(tok) {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
		i++
	}
	if i == 0 {
		return "", false
	}
	for i < len(tok) && tok[i] == '=' {
		i++
	}
	return tok, i == len(tok)
}
