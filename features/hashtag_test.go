package features_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/streamprofile/streamprofile/features"
)

func TestHashTag(t *testing.T) {
	for _, tc := range []struct{ user, tag string }{
		{"u1", "u1"},
		{"512475445", "512475445"},
		{"{x", "{x"},
		{"a}b", "a%7Db"},
		{"}", "%7D"},
		{"%", "%25"},
		{"%7D", "%257D"},
		{"", "%"},
		{"Zoë}", "Zoë%7D"},
	} {
		if got := features.HashTag(tc.user); got != tc.tag {
			t.Errorf("HashTag(%q) = %q, want %q", tc.user, got, tc.tag)
		}
	}
}

func TestUserOfKeyRejectsOtherKeys(t *testing.T) {
	s, err := features.NewStore(nilClient(t), features.StoreConfig{Prefix: "sp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sp:{u}:alias", "sp:{u}:erased", "other:{u}:p", "sp:ckpt:{g}:t:0", "sp:{}:p",
		"sp:{a}b}:p", "sp:{a%zz}:p", "sp:{a%7}:p"} {
		if u, ok := s.UserOfKey(k); ok {
			t.Errorf("UserOfKey(%q) = %q, true; want false", k, u)
		}
	}
}

// For every id, the user key's hash tag is what Redis Cluster hashes (no
// '}', never empty), and the key maps back to the id (so distinct ids never
// share keys).
func FuzzHashTag(f *testing.F) {
	for _, s := range []string{"u1", "", "}", "%", "%7D", "a}b{c", "{", "%25%7D}}"} {
		f.Add(s)
	}
	s, err := features.NewStore(nilClient(f), features.StoreConfig{Prefix: "sp"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, user string) {
		tag := features.HashTag(user)
		if tag == "" || strings.Contains(tag, "}") {
			t.Fatalf("HashTag(%q) = %q: empty or holds '}'", user, tag)
		}
		if !strings.ContainsAny(user, "%}") && user != "" && tag != user {
			t.Fatalf("HashTag(%q) = %q: an id without '%%' and '}' must stay as it is", user, tag)
		}
		got, ok := s.UserOfKey(s.UserKey(user))
		if !ok || got != user {
			t.Fatalf("UserOfKey(UserKey(%q)) = %q, %v", user, got, ok)
		}
		for _, k := range []string{s.UserKeyPrefix(user) + "seg", s.AliasKey(user), s.ErasedKey(user)} {
			if slot(k) != slot(s.UserKey(user)) {
				t.Fatalf("user %q: key %q not in the slot of %q", user, k, s.UserKey(user))
			}
		}
	})
}

// slot computes a key's Redis Cluster slot as the server does: the text
// between the first '{' and the next '}' when not empty, else the whole key.
func slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return features.Slot(key[i+1 : i+1+j])
		}
	}
	return features.Slot(key)
}

// nilClient is a client that is never used: key functions need no server.
func nilClient(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
