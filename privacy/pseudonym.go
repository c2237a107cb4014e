package privacy

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

const (
	// MinSecretLen is the shortest accepted key secret, in bytes.
	MinSecretLen = 32
	// MaxKeyIDLen is the longest key id, in bytes.
	MaxKeyIDLen = 16
	// PseudonymPrefix starts every pseudonym (format version 1).
	PseudonymPrefix = "p1"
	// digestBytes of the HMAC are kept: 160 bits, 32 base32 characters.
	digestBytes = 20
	// DigestLen is the length of a pseudonym's digest part.
	DigestLen = digestBytes * 8 / 5
	// hmacContext is prepended to every id before hashing.
	hmacContext = "streamprofile/pseudonym/v1\x00"
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Key is one pseudonymisation key.
type Key struct {
	// ID names the key inside every pseudonym made with it: 1 to
	// MaxKeyIDLen characters of [A-Za-z0-9_-].
	ID string
	// Secret is the HMAC key, at least MinSecretLen bytes.
	Secret []byte
}

// String never shows the secret.
func (k Key) String() string {
	return fmt.Sprintf("Key{ID: %q, Secret: %d bytes}", k.ID, len(k.Secret))
}

// GoString never shows the secret either (%#v).
func (k Key) GoString() string { return k.String() }

// Validate reports an invalid id or short secret.
func (k Key) Validate() error {
	if !validKeyID(k.ID) {
		return fmt.Errorf("%w: key id %q must be 1-%d characters of [A-Za-z0-9_-]", ErrInvalidKey, k.ID, MaxKeyIDLen)
	}
	if len(k.Secret) < MinSecretLen {
		return fmt.Errorf("%w: key %q: secret is %d bytes, at least %d required", ErrInvalidKey, k.ID, len(k.Secret), MinSecretLen)
	}
	return nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

type keyState struct {
	id     string
	prefix string    // "p1" + id + ":"
	pool   sync.Pool // of *hasher
}

// Pseudonymizer computes keyed pseudonyms (see the package documentation for
// the format). It is safe for concurrent use.
type Pseudonymizer struct {
	keys []*keyState // keys[0] is current
}

// New returns a Pseudonymizer over keys, the first of which is current. With
// no key, pseudonymisation is off and every method returns ids unchanged.
// The secrets are copied.
func New(keys []Key) (*Pseudonymizer, error) {
	p := &Pseudonymizer{}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			return nil, err
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("%w: key id %q used twice", ErrInvalidKey, k.ID)
		}
		seen[k.ID] = true
		secret := bytes.Clone(k.Secret)
		ks := &keyState{id: k.ID, prefix: PseudonymPrefix + k.ID + ":"}
		ks.pool.New = func() any {
			return &hasher{mac: hmac.New(sha256.New, secret), sum: make([]byte, 0, sha256.Size)}
		}
		p.keys = append(p.keys, ks)
	}
	return p, nil
}

// Enabled reports whether at least one key is configured.
func (p *Pseudonymizer) Enabled() bool { return len(p.keys) > 0 }

// CurrentKeyID is the id of the current key, or "" when disabled.
func (p *Pseudonymizer) CurrentKeyID() string {
	if len(p.keys) == 0 {
		return ""
	}
	return p.keys[0].id
}

// KeyIDs returns the configured key ids, current first.
func (p *Pseudonymizer) KeyIDs() []string {
	ids := make([]string, len(p.keys))
	for i, k := range p.keys {
		ids[i] = k.id
	}
	return ids
}

// Pseudonym returns id's pseudonym under the current key, or id itself when
// pseudonymisation is off.
func (p *Pseudonymizer) Pseudonym(id string) string {
	if len(p.keys) == 0 {
		return id
	}
	return p.keys[0].pseudonym(id)
}

// Candidates returns id's pseudonym under every configured key, current key
// first: the keys under which id's data may be stored during a rotation.
// With pseudonymisation off it returns []string{id}.
func (p *Pseudonymizer) Candidates(id string) []string {
	if len(p.keys) == 0 {
		return []string{id}
	}
	out := make([]string, len(p.keys))
	for i, k := range p.keys {
		out[i] = k.pseudonym(id)
	}
	return out
}

// KeyOf reports whether s has the form of a pseudonym made with one of the
// configured keys, and that key's id. It does not prove that s was made
// from any id: raw ids of the same shape are possible unless producers are
// kept from sending them.
func (p *Pseudonymizer) KeyOf(s string) (keyID string, ok bool) {
	for _, k := range p.keys {
		if strings.HasPrefix(s, k.prefix) && isDigest(s[len(k.prefix):]) {
			return k.id, true
		}
	}
	return "", false
}

func isDigest(s string) bool {
	if len(s) != DigestLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// hasher is a pooled keyed HMAC with its scratch buffers.
type hasher struct {
	mac hash.Hash
	in  []byte
	sum []byte
	enc [DigestLen]byte
}

func (k *keyState) pseudonym(id string) string {
	h := k.pool.Get().(*hasher)
	h.mac.Reset()
	h.in = append(append(h.in[:0], hmacContext...), id...)
	h.mac.Write(h.in)
	h.sum = h.mac.Sum(h.sum[:0])
	b32.Encode(h.enc[:], h.sum[:digestBytes])
	var b strings.Builder
	b.Grow(len(k.prefix) + DigestLen)
	b.WriteString(k.prefix)
	b.Write(h.enc[:])
	if cap(h.in) > 4096 {
		h.in = nil // do not keep a huge id's buffer
	}
	k.pool.Put(h)
	return b.String()
}

// LoadKeyFile reads keys from a file in either format described in the
// package documentation. The first key is current. Errors are
// *KeyFileError values that name the line and never contain secrets.
func LoadKeyFile(path string) ([]Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("privacy: read key file: %w", err)
	}
	keys, err := ParseKeys(b)
	if kfe, ok := err.(*KeyFileError); ok {
		kfe.File = path
	}
	return keys, err
}

// ParseKeys parses the contents of a key file (see LoadKeyFile).
func ParseKeys(b []byte) ([]Key, error) {
	var keys []Key
	var err error
	if isYAMLKeyFile(b) {
		keys, err = parseYAMLKeys(b)
	} else {
		keys, err = parseLineKeys(b)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, &KeyFileError{Msg: "no key found", Err: ErrNoKeys}
	}
	return keys, nil
}

func isYAMLKeyFile(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || line == "---" {
			continue
		}
		return strings.HasPrefix(line, "keys:")
	}
	return false
}

func parseYAMLKeys(b []byte) ([]Key, error) {
	var doc struct {
		Keys []struct {
			ID     string `yaml:"id"`
			Secret string `yaml:"secret"`
		} `yaml:"keys"`
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		// yaml errors quote the offending text, which may be a secret.
		return nil, &KeyFileError{Msg: "invalid YAML", Err: ErrInvalidKey}
	}
	if err := root.Decode(&doc); err != nil {
		return nil, &KeyFileError{Msg: "keys must be a list of {id, secret}", Err: ErrInvalidKey}
	}
	lines := yamlItemLines(&root)
	keys := make([]Key, 0, len(doc.Keys))
	seen := map[string]bool{}
	for i, k := range doc.Keys {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		key, err := makeKey(k.ID, k.Secret, seen)
		if err != nil {
			return nil, &KeyFileError{Line: line, Msg: err.Error(), Err: ErrInvalidKey}
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// yamlItemLines returns the line of each item of the top-level "keys" list.
func yamlItemLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "keys" && m.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, it := range m.Content[i+1].Content {
				out = append(out, it.Line)
			}
			return out
		}
	}
	return nil
}

func parseLineKeys(b []byte) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, secret, ok := strings.Cut(line, ":")
		if !ok {
			return nil, &KeyFileError{Line: n, Msg: `expected "id:base64secret"`, Err: ErrInvalidKey}
		}
		key, err := makeKey(strings.TrimSpace(id), strings.TrimSpace(secret), seen)
		if err != nil {
			return nil, &KeyFileError{Line: n, Msg: err.Error(), Err: ErrInvalidKey}
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, &KeyFileError{Msg: err.Error(), Err: ErrInvalidKey}
	}
	return keys, nil
}

// makeKey decodes and checks one key; its error messages omit the secret.
func makeKey(id, secret string, seen map[string]bool) (Key, error) {
	if !validKeyID(id) {
		return Key{}, fmt.Errorf("key id %q must be 1-%d characters of [A-Za-z0-9_-]", truncate(id, 32), MaxKeyIDLen)
	}
	if seen[id] {
		return Key{}, fmt.Errorf("key id %q used twice", id)
	}
	raw, ok := decodeBase64(secret)
	if !ok {
		return Key{}, fmt.Errorf("key %q: secret is not base64", id)
	}
	if len(raw) < MinSecretLen {
		return Key{}, fmt.Errorf("key %q: secret is %d bytes, at least %d required", id, len(raw), MinSecretLen)
	}
	seen[id] = true
	return Key{ID: id, Secret: raw}, nil
}

// decodeBase64 accepts the standard and URL-safe alphabets, padded or not.
func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
