package api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

// nopBackend finds nothing.
type nopBackend struct{}

func (nopBackend) Profile(context.Context, string) (*Profile, error) { return nil, ErrNotFound }
func (nopBackend) List(context.Context) ([]SegmentInfo, error)       { return nil, nil }
func (nopBackend) Members(context.Context, string, string, int) ([]string, string, error) {
	return nil, "", ErrNotFound
}
func (nopBackend) Erase(context.Context, string) (Receipt, error)  { return Receipt{}, ErrNotFound }
func (nopBackend) Status(context.Context, string) (Receipt, error) { return Receipt{}, ErrNotFound }

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		h, tok string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER a-b.c_d~e+f/g==", "a-b.c_d~e+f/g==", true},
		{"Bearer ", "", false},
		{"Bearer", "", false},
		{"Bearer  abc", "", false},
		{"Bearer abc ", "", false},
		{"Bearer ==", "", false},
		{"Bearer a=b", "", false},
		{"Bearer a,b", "", false},
		{"Bearer é", "", false},
		{"Basic abc", "", false},
		{"Bearerabc", "", false},
	} {
		tok, ok := bearerToken(tc.h)
		if ok != tc.ok || ok && tok != tc.tok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tc.h, tok, ok, tc.tok, tc.ok)
		}
	}
}

// TestAuthenticateFindsEachToken: with many tokens, each token finds its
// own credential, wherever it sits in the list, and others find none.
func TestAuthenticateFindsEachToken(t *testing.T) {
	var specs []TokenSpec
	for i := 0; i < 100; i++ {
		specs = append(specs, TokenSpec{Name: fmt.Sprintf("t%d", i), SHA256: HashToken(fmt.Sprintf("tok-%d", i)), Scopes: []Scope{ScopeProfilesRead}})
	}
	now := time.Unix(1e9, 0)
	a, err := newAuthenticator(specs, -1, 0, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", fmt.Sprintf("Bearer tok-%d", i))
		c, res := a.authenticate(r, now)
		if res != authOK || c.name != fmt.Sprintf("t%d", i) || c.limiter != nil {
			t.Fatalf("token %d: %v %v", i, c, res)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer tok-100")
	if c, res := a.authenticate(r, now); c != nil || res != authUnknown {
		t.Fatalf("unknown token: %v %v", c, res)
	}
}

func TestReloadKeepsBuckets(t *testing.T) {
	now := time.Unix(1e9, 0)
	specs := []TokenSpec{{Name: "a", SHA256: HashToken("x"), Scopes: []Scope{ScopeAdmin}}}
	a, err := newAuthenticator(specs, 1, 1, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.creds[0].limiter.take(now)
	specs = append(specs, TokenSpec{Name: "b", SHA256: HashToken("y"), Scopes: []Scope{ScopeAdmin}})
	b, err := newAuthenticator(specs, 1, 1, now, a)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.creds[0].limiter.take(now); ok {
		t.Error("reload reset the spent bucket of token a")
	}
	if ok, _ := b.creds[1].limiter.take(now); !ok {
		t.Error("new token b starts without a full bucket")
	}
}

// TestBucket checks the token bucket against its definition: at most
// burst + rate × elapsed requests are admitted over any run.
func TestBucket(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{1, 1}, {10, 5}, {0.5, 3}, {1000, 1}} {
		now := time.Unix(0, 0)
		b := newBucket(tc.rate, tc.burst, now)
		admitted := 0
		step := time.Duration(float64(time.Second) / tc.rate / 4) // exact for these rates
		for i := 0; i < 2000; i++ {
			ok, wait := b.take(now)
			if ok {
				admitted++
			} else if wait <= 0 || wait > time.Duration(float64(time.Second)/tc.rate)+time.Nanosecond {
				t.Fatalf("rate %g: wait %s", tc.rate, wait)
			}
			elapsed := now.Sub(time.Unix(0, 0)).Seconds()
			if limit := float64(tc.burst) + tc.rate*elapsed; float64(admitted) > limit+1e-9 {
				t.Fatalf("rate %g burst %d: %d admitted after %gs, limit %g", tc.rate, tc.burst, admitted, elapsed, limit)
			}
			now = now.Add(step)
		}
		// Over a long run the admitted rate approaches the configured one.
		elapsed := now.Sub(time.Unix(0, 0)).Seconds()
		if want := tc.rate * elapsed; float64(admitted) < want*0.95 {
			t.Errorf("rate %g: %d admitted over %gs, want about %g", tc.rate, admitted, elapsed, want)
		}
	}
	if got := retryAfterSeconds(1500 * time.Millisecond); got != 2 {
		t.Errorf("retryAfterSeconds(1.5s) = %d", got)
	}
	if got := retryAfterSeconds(time.Nanosecond); got != 1 {
		t.Errorf("retryAfterSeconds(1ns) = %d", got)
	}
}
