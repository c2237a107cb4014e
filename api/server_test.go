package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamprofile/streamprofile/api"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	const profile = "/v1/profiles/u1"
	long := strings.Repeat("a", api.MaxTokenLen+1)
	for _, tc := range []struct {
		name      string
		method    string
		target    string
		auth      []string // Authorization header values
		status    int
		code      api.Code
		challenge string // WWW-Authenticate
	}{
		{"missing", "GET", profile, nil, 401, api.CodeUnauthorized, `Bearer realm="streamprofile"`},
		{"other scheme", "GET", profile, []string{"Basic dXNlcjpwYXNz"}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_request"`},
		{"empty bearer", "GET", profile, []string{"Bearer "}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_request"`},
		{"bearer without space", "GET", profile, []string{"Bearer" + tokRead}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_request"`},
		{"token with space", "GET", profile, []string{"Bearer a b"}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_request"`},
		{"token with bad character", "GET", profile, []string{"Bearer abc,def"}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_request"`},
		{"token too long", "GET", profile, []string{"Bearer " + long}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_request"`},
		{"two headers", "GET", profile, []string{"Bearer " + tokRead, "Bearer " + tokRead}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_request"`},
		{"unknown token", "GET", profile, []string{"Bearer spt_wrong"}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_token"`},
		{"digest as token", "GET", profile, []string{"Bearer " + api.HashToken(tokRead)}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_token"`},
		{"expired", "GET", profile, []string{"Bearer " + tokExpired}, 401, api.CodeUnauthorized, `Bearer realm="streamprofile", error="invalid_token"`},
		{"read token erasing", "DELETE", profile, []string{"Bearer " + tokRead}, 403, api.CodeForbidden, `Bearer realm="streamprofile", error="insufficient_scope", scope="profiles:erase"`},
		{"read token on receipt", "GET", "/v1/erasures/er-1", []string{"Bearer " + tokRead}, 403, api.CodeForbidden, `Bearer realm="streamprofile", error="insufficient_scope", scope="profiles:erase"`},
		{"erase token reading", "GET", profile, []string{"Bearer " + tokErase}, 403, api.CodeForbidden, `Bearer realm="streamprofile", error="insufficient_scope", scope="profiles:read"`},
		{"erase token on segments", "GET", "/v1/segments", []string{"Bearer " + tokErase}, 403, api.CodeForbidden, `Bearer realm="streamprofile", error="insufficient_scope", scope="profiles:read"`},
		{"read token", "GET", profile, []string{"Bearer " + tokRead}, 200, "", ""},
		{"scheme is case-insensitive", "GET", profile, []string{"bEARER " + tokRead}, 200, "", ""},
		{"not yet expired", "GET", profile, []string{"Bearer " + tokLater}, 200, "", ""},
		{"admin reads", "GET", "/v1/segments", []string{"Bearer " + tokAdmin}, 200, "", ""},
		{"admin erases", "DELETE", profile, []string{"Bearer " + tokAdmin}, 202, "", ""},
		{"erase token erases", "DELETE", "/v1/profiles/anon-2", []string{"Bearer " + tokErase}, 202, "", ""},
		{"health is public", "GET", "/healthz", nil, 200, "", ""},
		{"health ignores bad tokens", "GET", "/healthz", []string{"Bearer spt_wrong"}, 200, "", ""},
		{"spec is public", "GET", "/openapi.json", nil, 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			for _, v := range tc.auth {
				hdr = append(hdr, "Authorization", v)
			}
			rec := e.do(t, tc.method, tc.target, "", hdr...)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.code != "" {
				if p := problemOf(t, rec); p.Code != tc.code {
					t.Errorf("code %q, want %q", p.Code, tc.code)
				}
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
		})
	}
}

func TestExpiryFollowsClock(t *testing.T) {
	e := newEnv(t, nil)
	if rec := e.do(t, "GET", "/v1/segments", tokLater); rec.Code != 200 {
		t.Fatalf("before expiry: %d", rec.Code)
	}
	e.clk.Advance(time.Hour) // expires is exclusive: at t0+1h the token is expired
	rec := e.do(t, "GET", "/v1/segments", tokLater)
	if rec.Code != 401 || !strings.Contains(problemOf(t, rec).Detail, "expired") {
		t.Fatalf("at expiry: %d %s", rec.Code, rec.Body)
	}
}

func TestManyTokensEachMatchesItsOwn(t *testing.T) {
	var specs []api.TokenSpec
	var tokens []string
	for i := 0; i < 40; i++ {
		tok, digest, err := api.MintToken()
		if err != nil {
			t.Fatal(err)
		}
		scope := api.ScopeProfilesRead
		if i%2 == 1 {
			scope = api.ScopeProfilesErase
		}
		specs = append(specs, api.TokenSpec{Name: "t" + string(rune('a'+i%26)) + string(rune('a'+i/26)), SHA256: digest, Scopes: []api.Scope{scope}})
		tokens = append(tokens, tok)
	}
	e := newEnv(t, func(c *api.Config) { c.Tokens = specs })
	for i, tok := range tokens {
		want := 200
		if i%2 == 1 {
			want = 403
		}
		if rec := e.do(t, "GET", "/v1/segments", tok); rec.Code != want {
			t.Errorf("token %d: status %d, want %d", i, rec.Code, want)
		}
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.RateLimit = 1; c.RateBurst = 2 })
	for i := 0; i < 2; i++ {
		if rec := e.do(t, "GET", "/v1/segments", tokRead); rec.Code != 200 {
			t.Fatalf("request %d within burst: %d", i, rec.Code)
		}
	}
	rec := e.do(t, "GET", "/v1/segments", tokRead)
	if rec.Code != 429 || problemOf(t, rec).Code != api.CodeRateLimited || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d, Retry-After %q, %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	// Other tokens have their own bucket; public routes have none.
	if rec := e.do(t, "GET", "/v1/segments", tokAdmin); rec.Code != 200 {
		t.Fatalf("another token: %d", rec.Code)
	}
	if rec := e.do(t, "GET", "/healthz", ""); rec.Code != 200 {
		t.Fatalf("health: %d", rec.Code)
	}
	// Requests failing authentication do not spend a token's bucket.
	e.do(t, "GET", "/v1/segments", "spt_wrong")
	e.clk.Advance(999 * time.Millisecond)
	if rec := e.do(t, "GET", "/v1/segments", tokRead); rec.Code != 429 {
		t.Fatalf("0.999 s later: %d, want 429", rec.Code)
	}
	e.clk.Advance(time.Millisecond)
	if rec := e.do(t, "GET", "/v1/segments", tokRead); rec.Code != 200 {
		t.Fatalf("1 s later: %d, want 200", rec.Code)
	}
	// A long pause refills at most the burst.
	e.clk.Advance(time.Hour)
	codes := []int{}
	for i := 0; i < 3; i++ {
		codes = append(codes, e.do(t, "GET", "/v1/segments", tokRead).Code)
	}
	if !slices.Equal(codes, []int{200, 200, 429}) {
		t.Fatalf("after a pause: %v", codes)
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.RateLimit = 0.1; c.RateBurst = 1 }) // one per 10 s
	e.do(t, "GET", "/v1/segments", tokRead)
	e.clk.Advance(500 * time.Millisecond)
	rec := e.do(t, "GET", "/v1/segments", tokRead)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "10" {
		t.Fatalf("status %d Retry-After %q, want 429 and 10 (9.5 s rounded up)", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestGetProfile(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.do(t, "GET", "/v1/profiles/u1", tokRead)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	p := decode[api.Profile](t, rec)
	want := sampleProfile(e.store.pseudo, "u1", "anon-1", "anon-2")
	if p.ID != "u1" || p.Pseudonym != want.Pseudonym || !slices.Equal(p.LinkedIDs, want.LinkedIDs) ||
		p.Scores["purchase_propensity"].Explanation[0] != want.Scores["purchase_propensity"].Explanation[0] ||
		!p.EvaluatedAt.Equal(t0) || p.Consent != want.Consent {
		t.Errorf("profile %+v", p)
	}
	// Any linked id, or the pseudonym, reaches the same profile; ids are
	// path-unescaped.
	for _, target := range []string{"/v1/profiles/anon-2", "/v1/profiles/" + want.Pseudonym} {
		if p := decode[api.Profile](t, e.do(t, "GET", target, tokRead)); p.ID != "u1" {
			t.Errorf("%s: id %q", target, p.ID)
		}
	}
	for _, target := range []string{"/v1/profiles/a%2Fb%20c", "/v1/profiles/%C3%A9-id"} {
		rec := e.do(t, "GET", target, tokRead)
		if p := decode[api.Profile](t, rec); p.ID != "a/b c" {
			t.Errorf("%s: id %q", target, p.ID)
		}
	}
	rec = e.do(t, "GET", "/v1/profiles/nobody", tokRead)
	if p := problemOf(t, rec); rec.Code != 404 || p.Code != api.CodeNotFound || strings.Contains(rec.Body.String(), "nobody") {
		t.Errorf("unknown id: %d %s", rec.Code, rec.Body)
	}
}

func TestProfileEmptyCollections(t *testing.T) {
	e := newEnv(t, nil)
	e.store.set(func(f *fakeStore) {
		f.profiles["bare"] = &api.Profile{ID: "bare", EvaluatedAt: t0}
	})
	rec := e.do(t, "GET", "/v1/profiles/bare", tokRead)
	body := rec.Body.String()
	for _, want := range []string{`"linked_ids":[]`, `"features":{}`, `"affinities":{}`, `"segments":[]`, `"scores":{}`, `"consent":{"profiling":false,"ads":false}`} {
		if !strings.Contains(body, want) {
			t.Errorf("body %s lacks %s", body, want)
		}
	}
	if strings.Contains(body, "pseudonym") || strings.Contains(body, "updated_at") {
		t.Errorf("body %s has empty optional members", body)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		method, target string
		status         int
		code           api.Code
	}{
		{"GET", "/v1/profiles/" + strings.Repeat("x", api.MaxIDLen+1), 400, api.CodeBadRequest},
		{"GET", "/v1/profiles/" + strings.Repeat("x", api.MaxIDLen), 404, api.CodeNotFound},
		{"GET", "/v1/profiles/a%00b", 400, api.CodeBadRequest},
		{"GET", "/v1/profiles/a%0Ab", 400, api.CodeBadRequest},
		{"GET", "/v1/profiles/%FF", 400, api.CodeBadRequest},
		{"DELETE", "/v1/profiles/a%7Fb", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/High-Value/members", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/" + strings.Repeat("a", 65) + "/members", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/high_value/members?limit=0", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/high_value/members?limit=1001", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/high_value/members?limit=ten", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/high_value/members?limit=", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/high_value/members?cursor=bogus", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/high_value/members?cursor=" + strings.Repeat("c", api.MaxCursorLen+1), 400, api.CodeBadRequest},
		{"GET", "/v1/segments/high_value/members?cursor=%00", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/high_value/members?cursor=%zz", 400, api.CodeBadRequest},
		{"GET", "/v1/segments/nope/members", 404, api.CodeNotFound},
		{"GET", "/v1/erasures/a%20b", 400, api.CodeBadRequest},
		{"GET", "/v1/erasures/" + strings.Repeat("r", api.MaxReceiptLen+1), 400, api.CodeBadRequest},
		{"GET", "/v1/erasures/er-404", 404, api.CodeNotFound},
		// routing
		{"GET", "/v1/nope", 404, api.CodeNotFound},
		{"GET", "/v1/profiles", 404, api.CodeNotFound},
		{"GET", "/v1/profiles/", 404, api.CodeNotFound},
		{"GET", "/v1/segments/", 404, api.CodeNotFound},
		{"GET", "/v1//segments", 404, api.CodeNotFound},
		{"GET", "/v1/segments/../segments", 404, api.CodeNotFound},
		{"GET", "/", 404, api.CodeNotFound},
		{"POST", "/v1/profiles/u1", 405, api.CodeMethodNotAllowed},
		{"PUT", "/v1/segments", 405, api.CodeMethodNotAllowed},
		{"DELETE", "/healthz", 405, api.CodeMethodNotAllowed},
	} {
		rec := e.do(t, tc.method, tc.target, tokAdmin)
		if rec.Code != tc.status || problemOf(t, rec).Code != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.target, rec.Code, rec.Body, tc.status, tc.code)
		}
	}
	rec := e.do(t, "POST", "/v1/profiles/u1", tokAdmin)
	if got := rec.Header().Get("Allow"); got != "GET, HEAD, DELETE" {
		t.Errorf("Allow %q", got)
	}
	rec = e.do(t, "PUT", "/v1/segments", "")
	if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow %q", got)
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"small body ignored", 100, false, 202},
		{"limit", 1024, false, 202},
		{"over the limit", 1025, false, 413},
		{"large chunked", 64 << 10, true, 413},
		{"small chunked", 10, true, 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			var body io.Reader = bytes.NewReader(make([]byte, tc.size))
			if tc.chunked {
				body = io.MultiReader(body) // hides the length
			}
			req := httptest.NewRequest("DELETE", "/v1/profiles/u1", body)
			if tc.chunked {
				req.ContentLength = -1
			}
			req.Header.Set("Authorization", "Bearer "+tokAdmin)
			rec := e.serve(t, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 413 && problemOf(t, rec).Code != api.CodePayloadTooLarge {
				t.Fatalf("code %s", problemOf(t, rec).Code)
			}
		})
	}
	// The limit applies before authentication, to every route.
	req := httptest.NewRequest("GET", "/healthz", strings.NewReader(strings.Repeat("x", 2000)))
	if rec := e.serve(t, req); rec.Code != 413 {
		t.Fatalf("health with a large body: %d", rec.Code)
	}
}

func TestPagination(t *testing.T) {
	e := newEnv(t, nil)
	want := e.store.segments["high_value"]
	for _, limit := range []int{0, 1, 7, 100, 249, 250, 1000} {
		var got []string
		cursor, pages := "", 0
		for {
			q := url.Values{}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			rec := e.do(t, "GET", "/v1/segments/high_value/members?"+q.Encode(), tokRead)
			if rec.Code != 200 {
				t.Fatalf("limit %d page %d: %d %s", limit, pages, rec.Code, rec.Body)
			}
			page := decode[api.MemberPage](t, rec)
			pageLimit := limit
			if limit == 0 {
				pageLimit = 100 // DefaultPageSize
			}
			if page.Segment != "high_value" || len(page.Members) > pageLimit || page.NextCursor != "" && len(page.Members) != pageLimit {
				t.Fatalf("limit %d: page %+v", limit, page)
			}
			got = append(got, page.Members...)
			pages++
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: %d members over %d pages, want the %d in order", limit, len(got), pages, len(want))
		}
	}
	rec := e.do(t, "GET", "/v1/segments/empty/members", tokRead)
	if body := rec.Body.String(); body != `{"segment":"empty","members":[]}` {
		t.Fatalf("empty segment: %s", body)
	}
}

func TestListSegments(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.do(t, "GET", "/v1/segments", tokRead)
	list := decode[api.SegmentList](t, rec)
	if len(list.Segments) != 2 || list.Segments[1].Name != "high_value" || *list.Segments[1].MemberCount != 250 || list.Segments[0].MemberCount != nil {
		t.Fatalf("segments %s", rec.Body)
	}
	e.store.set(func(f *fakeStore) { f.infos = nil })
	if rec := e.do(t, "GET", "/v1/segments", tokRead); rec.Body.String() != `{"segments":[]}` {
		t.Fatalf("no segments: %s", rec.Body)
	}
}

// TestErasureFlow: DELETE answers 202 with a receipt and its Location; the
// receipt moves through its steps to completed; the profile is then gone
// under every id; the receipt names the user by pseudonym only.
func TestErasureFlow(t *testing.T) {
	e := newEnv(t, nil)
	pseudonym := e.store.pseudo.Pseudonym("u1")
	rec := e.do(t, "DELETE", "/v1/profiles/anon-1", tokErase)
	if rec.Code != 202 {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	r := decode[api.Receipt](t, rec)
	loc := rec.Header().Get("Location")
	if r.Status != api.ErasureAccepted || r.User != pseudonym || loc != "/v1/erasures/"+r.Receipt || len(r.Steps) != 3 ||
		!r.RequestedAt.Equal(t0) || !r.CompletedAt.IsZero() {
		t.Fatalf("receipt %+v at %q", r, loc)
	}
	for _, bad := range []string{"u1", "anon-1", "anon-2"} {
		if strings.Contains(rec.Body.String(), `"`+bad+`"`) {
			t.Errorf("receipt shows raw id %q: %s", bad, rec.Body)
		}
	}
	if strings.Contains(rec.Body.String(), "completed_at") || strings.Contains(rec.Body.String(), `"at"`) {
		t.Errorf("pending receipt has completion times: %s", rec.Body)
	}
	// A repeated request returns the pending receipt.
	if again := decode[api.Receipt](t, e.do(t, "DELETE", "/v1/profiles/u1", tokErase)); again.Receipt != r.Receipt {
		t.Fatalf("repeated DELETE gave receipt %q, want %q", again.Receipt, r.Receipt)
	}
	var states []api.ErasureStatus
	for i := 0; i < 5; i++ {
		e.clk.Advance(time.Second)
		got := decode[api.Receipt](t, e.do(t, "GET", loc, tokErase))
		states = append(states, got.Status)
		if got.Status == api.ErasureCompleted {
			if !got.CompletedAt.Equal(t0.Add(3*time.Second)) || got.Steps[2].Status != api.StepCompleted {
				t.Fatalf("completed receipt %+v", got)
			}
			break
		}
	}
	if !slices.Equal(states, []api.ErasureStatus{api.ErasureInProgress, api.ErasureInProgress, api.ErasureCompleted}) {
		t.Fatalf("states %v", states)
	}
	for _, id := range []string{"u1", "anon-1", "anon-2", pseudonym} {
		if rec := e.do(t, "GET", "/v1/profiles/"+id, tokRead); rec.Code != 404 {
			t.Errorf("profile %s after erasure: %d", id, rec.Code)
		}
	}
	if rec := e.do(t, "DELETE", "/v1/profiles/u1", tokErase); rec.Code != 404 {
		t.Errorf("DELETE after erasure: %d", rec.Code)
	}
	if got := decode[api.Receipt](t, e.do(t, "GET", loc, tokAdmin)); got.Status != api.ErasureCompleted {
		t.Errorf("receipt after completion: %+v", got)
	}
}

func TestBackendFailures(t *testing.T) {
	const secret = "redis: dial tcp 10.1.2.3:6379: connection refused for user u1"
	nan := math.NaN()
	for _, tc := range []struct {
		name   string
		setup  func(f *fakeStore)
		method string
		target string
		status int
		code   api.Code
	}{
		{"unexpected error", func(f *fakeStore) { f.err = errors.New(secret) }, "GET", "/v1/profiles/u1", 500, api.CodeInternal},
		{"unavailable", func(f *fakeStore) { f.err = errors.Join(api.ErrUnavailable, errors.New(secret)) }, "GET", "/v1/segments", 503, api.CodeUnavailable},
		{"backend deadline", func(f *fakeStore) { f.err = context.DeadlineExceeded }, "GET", "/v1/segments", 504, api.CodeTimeout},
		{"panic", func(f *fakeStore) {
			f.override = func(string) (any, bool) { panic(secret) }
		}, "GET", "/v1/profiles/u1", 500, api.CodeInternal},
		{"nil profile", func(f *fakeStore) {
			f.override = func(string) (any, bool) { return (*api.Profile)(nil), true }
		}, "GET", "/v1/profiles/u1", 500, api.CodeInternal},
		{"NaN feature", func(f *fakeStore) {
			f.override = func(string) (any, bool) {
				return &api.Profile{ID: "u1", Features: map[string]float64{"x": nan}}, true
			}
		}, "GET", "/v1/profiles/u1", 500, api.CodeInternal},
		{"too many members", func(f *fakeStore) {
			f.override = func(string) (any, bool) { return []string{"a", "b", "c"}, true }
		}, "GET", "/v1/segments/high_value/members?limit=2", 500, api.CodeInternal},
		{"receipt without status", func(f *fakeStore) {
			f.override = func(string) (any, bool) {
				return api.Receipt{Receipt: "r1", User: "p", RequestedAt: t0}, true
			}
		}, "DELETE", "/v1/profiles/u1", 500, api.CodeInternal},
		{"receipt with bad id", func(f *fakeStore) {
			f.override = func(string) (any, bool) {
				return api.Receipt{Receipt: "r/1", User: "p", Status: api.ErasureAccepted, RequestedAt: t0}, true
			}
		}, "GET", "/v1/erasures/r1", 500, api.CodeInternal},
		{"receipt with bad step", func(f *fakeStore) {
			f.override = func(string) (any, bool) {
				return api.Receipt{Receipt: "r1", User: "p", Status: api.ErasureAccepted, RequestedAt: t0,
					Steps: []api.ErasureStep{{Name: "x", Status: "done"}}}, true
			}
		}, "GET", "/v1/erasures/r1", 500, api.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := newEnv(t, func(c *api.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
			e.store.set(tc.setup)
			rec := e.do(t, tc.method, tc.target, tokAdmin)
			p := problemOf(t, rec)
			if rec.Code != tc.status || p.Code != tc.code {
				t.Fatalf("status %d %s, want %d %s", rec.Code, rec.Body, tc.status, tc.code)
			}
			if strings.Contains(rec.Body.String(), "10.1.2.3") || strings.Contains(rec.Body.String(), "redis") {
				t.Errorf("response leaks internals: %s", rec.Body)
			}
			if tc.status >= 500 && !strings.Contains(logs.String(), p.RequestID) {
				t.Errorf("log %q lacks request id %s", logs.String(), p.RequestID)
			}
			if tc.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	for _, deaf := range []bool{false, true} {
		name := map[bool]string{false: "backend honours ctx", true: "backend ignores ctx"}[deaf]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(c *api.Config) { c.RequestTimeout = 30 * time.Millisecond })
			release := make(chan struct{})
			defer close(release) // lets the deaf backend's goroutine end
			e.store.set(func(f *fakeStore) { f.block, f.deaf = release, deaf })
			for _, target := range []string{"/v1/profiles/u1", "/v1/segments", "/v1/segments/high_value/members", "/v1/erasures/er-1"} {
				rec := e.do(t, "GET", target, tokAdmin)
				if rec.Code != 504 || problemOf(t, rec).Code != api.CodeTimeout {
					t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
				}
			}
			if rec := e.do(t, "DELETE", "/v1/profiles/u1", tokAdmin); rec.Code != 504 {
				t.Fatalf("DELETE: %d", rec.Code)
			}
		})
	}
}

// A request whose client has gone gets a timeout problem without waiting
// for the backend.
func TestClientGone(t *testing.T) {
	e := newEnv(t, nil)
	release := make(chan struct{})
	defer close(release)
	e.store.set(func(f *fakeStore) { f.block = release })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/v1/profiles/u1", nil)
	req.Header.Set("Authorization", "Bearer "+tokRead)
	if rec := e.serve(t, req); rec.Code != 504 {
		t.Fatalf("status %d", rec.Code)
	}
}

func TestRequestIDsDiffer(t *testing.T) {
	e := newEnv(t, nil)
	a := e.do(t, "GET", "/healthz", "").Header().Get("X-Request-Id")
	b := e.do(t, "GET", "/healthz", "").Header().Get("X-Request-Id")
	if a == "" || a == b {
		t.Fatalf("request ids %q %q", a, b)
	}
	if rec := e.do(t, "GET", "/healthz", ""); rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("no nosniff")
	}
}

func TestHeadIsGetWithoutBody(t *testing.T) {
	e := newEnv(t, nil)
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("HEAD", ts.URL+"/v1/profiles/u1", nil)
	req.Header.Set("Authorization", "Bearer "+tokRead)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("HEAD: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	ts.Client().CloseIdleConnections()
}

// TestContractCheckerRejects: the checker that every test response goes
// through does reject responses that break the documented contract.
func TestContractCheckerRejects(t *testing.T) {
	c := loadContract(t)
	goodProfile := `{"id":"u1","linked_ids":[],"features":{},"affinities":{},"segments":[],"scores":{},"consent":{"profiling":true,"ads":false},"evaluated_at":"2026-03-01T12:00:00Z"}`
	for _, tc := range []struct {
		name, method, target string
		status               int
		ctype, body          string
		hdr                  []string
		ok                   bool
	}{
		{"valid profile", "GET", "/v1/profiles/u1", 200, "application/json", goodProfile, nil, true},
		{"extra member", "GET", "/v1/profiles/u1", 200, "application/json", strings.Replace(goodProfile, `"id":"u1"`, `"id":"u1","x":1`, 1), nil, false},
		{"missing member", "GET", "/v1/profiles/u1", 200, "application/json", strings.Replace(goodProfile, `"linked_ids":[],`, ``, 1), nil, false},
		{"bad time", "GET", "/v1/profiles/u1", 200, "application/json", strings.Replace(goodProfile, `2026-03-01T12:00:00Z`, `yesterday`, 1), nil, false},
		{"bad pseudonym", "GET", "/v1/profiles/u1", 200, "application/json", strings.Replace(goodProfile, `"id":"u1"`, `"id":"u1","pseudonym":"u1"`, 1), nil, false},
		{"undocumented status", "GET", "/v1/segments", 404, "application/problem+json",
			`{"type":"urn:streamprofile:problem:not_found","title":"Not Found","status":404,"code":"not_found","request_id":"r"}`, nil, false},
		{"problem with unknown code", "GET", "/v1/profiles/u1", 404, "application/problem+json",
			`{"type":"urn:streamprofile:problem:gone","title":"Not Found","status":404,"code":"gone","request_id":"r"}`, nil, false},
		{"problem status mismatch", "GET", "/v1/profiles/u1", 404, "application/problem+json",
			`{"type":"urn:streamprofile:problem:not_found","title":"Not Found","status":400,"code":"not_found","request_id":"r"}`, nil, false},
		{"401 without challenge", "GET", "/v1/profiles/u1", 401, "application/problem+json",
			`{"type":"urn:streamprofile:problem:unauthorized","title":"Unauthorized","status":401,"code":"unauthorized","request_id":"r"}`, nil, false},
		{"401 with challenge", "GET", "/v1/profiles/u1", 401, "application/problem+json",
			`{"type":"urn:streamprofile:problem:unauthorized","title":"Unauthorized","status":401,"code":"unauthorized","request_id":"r"}`, []string{"WWW-Authenticate", "Bearer"}, true},
		{"wrong content type", "GET", "/v1/segments", 200, "text/plain", `{"segments":[]}`, nil, false},
		{"receipt with unknown status", "GET", "/v1/erasures/r1", 200, "application/json",
			`{"receipt":"r1","user":"p","status":"done","steps":[],"requested_at":"2026-03-01T12:00:00Z"}`, nil, false},
	} {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tc.body))}
		resp.Header.Set("Content-Type", tc.ctype)
		resp.Header.Set("X-Request-Id", "r")
		resp.Header.Set("Cache-Control", "no-store")
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			resp.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		if err := c.check(req, resp); (err == nil) != tc.ok {
			t.Errorf("%s: check = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
