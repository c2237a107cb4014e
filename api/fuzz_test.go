package api_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/streamprofile/streamprofile/api"
)

// FuzzAPI: any method, path, query, Authorization header, one more header
// and body gets a well-formed response: JSON of the documented content type, a problem for
// every error, matching the OpenAPI document (env.serve checks all that),
// and never a panic.
func FuzzAPI(f *testing.F) {
	for _, s := range []struct {
		method, target, auth string
		body                 []byte
	}{
		{"GET", "/v1/profiles/u1", "Bearer " + tokRead, nil},
		{"GET", "/v1/profiles/a%2Fb%20c", "Bearer " + tokAdmin, nil},
		{"DELETE", "/v1/profiles/u1", "Bearer " + tokErase, []byte("x")},
		{"GET", "/v1/segments", "Bearer " + tokRead, nil},
		{"GET", "/v1/segments/high_value/members?limit=3&cursor=v1.33", "Bearer " + tokAdmin, nil},
		{"GET", "/v1/erasures/er-1", "Bearer " + tokAdmin, nil},
		{"GET", "/healthz", "", nil},
		{"GET", "/openapi.json", "Basic x", nil},
		{"POST", "/v1/profiles/u1", "Bearer " + tokExpired, bytes.Repeat([]byte("a"), 2000)},
		{"PATCH", "/v1//x/../y?%zz", "bearer ", nil},
		{"OPTIONS", "*", "", nil},
		{"CONNECT", "/v1/segments", "Bearer " + tokAdmin, nil},
		{"", "/v1/profiles/%00", "Bearer " + tokRead, nil},
	} {
		f.Add(s.method, s.target, s.auth, "", s.body)
	}
	f.Add("gET", "/healthz", "", "", []byte(nil)) // methods are case-sensitive: 405
	f.Add("GET", "/v1/segments", "Bearer "+tokRead, "Content-Length: 5000", []byte(nil))
	f.Add("DELETE", "/v1/profiles/u1", "Bearer "+tokAdmin, "Transfer-Encoding: chunked", []byte("abc"))
	f.Add("GET", "/v1/profiles/u1", "Bearer "+tokAdmin, "Authorization: Bearer "+tokRead, []byte(nil))
	e := newEnv(f, nil)
	f.Fuzz(func(t *testing.T, method, target, auth, header string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // not something a server would receive
		}
		req := &http.Request{
			Method:     method,
			URL:        u,
			RequestURI: target,
			Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{},
			Host:          "api.test",
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if name, value, ok := strings.Cut(header, ":"); ok {
			req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		req = req.WithContext(t.Context())
		rec := e.serve(t, req)
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Code >= 400 {
			p := problemOf(t, rec)
			if !strings.HasPrefix(p.Type, api.ProblemTypePrefix) || p.Detail == "" {
				t.Fatalf("problem %+v", p)
			}
		}
	})
}

func FuzzParseTokens(f *testing.F) {
	b, _ := api.MarshalTokenFile(testTokens())
	f.Add(b)
	f.Add([]byte("tokens:\n  - name: a\n    token: x\n"))
	f.Add([]byte("tokens: [{name: a, sha256: " + api.HashToken("x") + ", scopes: [admin], expires: 2027-01-01T00:00:00Z}]"))
	f.Add([]byte("tokens: {a: 1}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		specs, err := api.ParseTokens(b)
		if err != nil {
			var tfe *api.TokenFileError
			if !errors.As(err, &tfe) || !errors.Is(err, api.ErrInvalidConfig) {
				t.Fatalf("error %v (%T) is not a TokenFileError", err, err)
			}
			return
		}
		if len(specs) == 0 {
			return
		}
		// Whatever parses is accepted by a server and round-trips.
		out, err := api.MarshalTokenFile(specs)
		if err != nil {
			t.Fatalf("MarshalTokenFile: %v", err)
		}
		back, err := api.ParseTokens(out)
		if err != nil || len(back) != len(specs) {
			t.Fatalf("round trip: %v", err)
		}
		store := newFakeStore(t, &clock{t: t0})
		if _, err := api.New(api.Config{Tokens: specs}, api.Backends{Profiles: store, Segments: store, Erasures: store}); err != nil {
			t.Fatalf("New rejects parsed tokens: %v", err)
		}
	})
}

// BenchmarkGetProfile: an authorised profile read through the whole
// handler (auth over 5 tokens, rate limit, backend call with deadline, JSON)
// with an in-memory backend.
func BenchmarkGetProfile(b *testing.B) {
	e := newEnv(b, func(c *api.Config) { c.RateLimit = 1e12 })
	req := httptest.NewRequest("GET", "/v1/profiles/u1", nil)
	req.Header.Set("Authorization", "Bearer "+tokRead)
	h := e.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkUnauthorized: the cost of refusing an unknown token.
func BenchmarkUnauthorized(b *testing.B) {
	e := newEnv(b, nil)
	req := httptest.NewRequest("GET", "/v1/profiles/u1", nil)
	req.Header.Set("Authorization", "Bearer spt_unknown")
	h := e.srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			b.Fatal(rec.Code)
		}
	}
}
