package api_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/streamprofile/streamprofile/api"
	"github.com/streamprofile/streamprofile/privacy"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a manual clock for token expiry and rate limits.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeStore implements every backend in memory. Erasures advance one step
// per Status call and delete the profile when they complete.
type fakeStore struct {
	mu       sync.Mutex
	clk      *clock
	pseudo   *privacy.Pseudonymizer
	profiles map[string]*api.Profile // by every linked id
	segments map[string][]string     // members, sorted
	infos    []api.SegmentInfo
	receipts map[string]*api.Receipt
	pending  map[string]string // pseudonym → receipt of a pending erasure
	seq      int

	// Fault injection, applied to every call when set.
	err      error
	block    chan struct{} // wait for close (or ctx when !deaf)
	deaf     bool          // with block: ignore ctx
	calls    int
	override func(method string) (any, bool) // returns a replacement result
}

var erasureSteps = []string{"profile_store", "identity_links", "segment_memberships"}

func newFakeStore(t testing.TB, clk *clock) *fakeStore {
	t.Helper()
	p, err := privacy.New([]privacy.Key{{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeStore{
		clk: clk, pseudo: p,
		profiles: map[string]*api.Profile{}, segments: map[string][]string{},
		receipts: map[string]*api.Receipt{}, pending: map[string]string{},
	}
	f.addProfile(sampleProfile(p, "u1", "anon-1", "anon-2"))
	f.addProfile(sampleProfile(p, "a/b c", "é-id"))
	var members []string
	for i := 0; i < 250; i++ {
		members = append(members, p.Pseudonym(fmt.Sprintf("user-%03d", i)))
	}
	slices.Sort(members)
	f.segments["high_value"] = members
	f.segments["empty"] = nil
	n := int64(len(members))
	f.infos = []api.SegmentInfo{
		{Name: "empty", Description: "No one"},
		{Name: "high_value", Description: "Spent 500 or more over 3 or more purchases", MemberCount: &n},
	}
	return f
}

// sampleProfile is a realistic profile: features, affinities, segments,
// scores with explanations, consent.
func sampleProfile(p *privacy.Pseudonymizer, id string, linked ...string) *api.Profile {
	return &api.Profile{
		ID:        id,
		Pseudonym: p.Pseudonym(id),
		LinkedIDs: linked,
		Features: map[string]float64{
			"views_total": 42, "carts_total": 3, "purchases_total": 1, "revenue_total": 35.79,
			"cart_abandon_rate": 0.5, "days_since_last_seen": 0.25,
		},
		Affinities: map[string][]api.Affinity{
			"brand":    {{Name: "samsung", Score: 3.5}, {Name: "apple", Score: 1.25}},
			"category": {{Name: "electronics.smartphone", Score: 4}},
		},
		Segments: []api.SegmentMembership{{Name: "high_value", Since: t0.Add(-48 * time.Hour)}},
		Scores: map[string]api.Score{
			"purchase_propensity": {Value: 0.73, ModelVersion: "propensity-v12", Explanation: []api.Contribution{
				{Feature: "carts_total", Contribution: 0.21}, {Feature: "days_since_last_seen", Contribution: -0.08}}},
			"churn_risk": {Value: 0.1, ModelVersion: "churn-v3"},
		},
		Consent:     api.Consent{Profiling: true, Ads: false, UpdatedAt: t0.Add(-time.Hour)},
		EvaluatedAt: t0,
	}
}

func (f *fakeStore) addProfile(p *api.Profile) {
	f.profiles[p.ID] = p
	f.profiles[p.Pseudonym] = p
	for _, id := range p.LinkedIDs {
		f.profiles[id] = p
	}
}

// enter applies the fault injection of every call.
func (f *fakeStore) enter(ctx context.Context, method string) (any, bool, error) {
	f.mu.Lock()
	f.calls++
	err, block, deaf, override := f.err, f.block, f.deaf, f.override
	f.mu.Unlock()
	if block != nil {
		if deaf {
			<-block
		} else {
			select {
			case <-block:
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
		}
	}
	if override != nil {
		if v, ok := override(method); ok {
			return v, true, nil
		}
	}
	return nil, false, err
}

func (f *fakeStore) Profile(ctx context.Context, id string) (*api.Profile, error) {
	if v, ok, err := f.enter(ctx, "Profile"); ok || err != nil {
		p, _ := v.(*api.Profile)
		return p, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.profiles[id]
	if !ok {
		return nil, fmt.Errorf("fake: profile: %w", api.ErrNotFound)
	}
	c := *p
	return &c, nil
}

func (f *fakeStore) List(ctx context.Context) ([]api.SegmentInfo, error) {
	if v, ok, err := f.enter(ctx, "List"); ok || err != nil {
		s, _ := v.([]api.SegmentInfo)
		return s, err
	}
	return slices.Clone(f.infos), nil
}

// The fake's cursors are "v1." + hex(offset): opaque to clients.
func (f *fakeStore) Members(ctx context.Context, name, cursor string, limit int) ([]string, string, error) {
	if v, ok, err := f.enter(ctx, "Members"); ok || err != nil {
		ids, _ := v.([]string)
		return ids, "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	members, ok := f.segments[name]
	if !ok {
		return nil, "", api.ErrNotFound
	}
	off := 0
	if cursor != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(cursor, "v1."))
		n, err2 := strconv.Atoi(string(b))
		if !strings.HasPrefix(cursor, "v1.") || err != nil || err2 != nil || n <= 0 || n > len(members) {
			return nil, "", api.ErrInvalidCursor
		}
		off = n
	}
	end := min(off+limit, len(members))
	next := ""
	if end < len(members) {
		next = "v1." + hex.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return slices.Clone(members[off:end]), next, nil
}

func (f *fakeStore) Erase(ctx context.Context, id string) (api.Receipt, error) {
	if v, ok, err := f.enter(ctx, "Erase"); ok || err != nil {
		r, _ := v.(api.Receipt)
		return r, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.profiles[id]
	if !ok {
		return api.Receipt{}, api.ErrNotFound
	}
	if rid, ok := f.pending[p.Pseudonym]; ok {
		return *f.receipts[rid], nil
	}
	f.seq++
	rid := fmt.Sprintf("er-%d", f.seq)
	r := &api.Receipt{Receipt: rid, User: p.Pseudonym, Status: api.ErasureAccepted, RequestedAt: f.clk.Now()}
	for _, s := range erasureSteps {
		r.Steps = append(r.Steps, api.ErasureStep{Name: s, Status: api.StepPending})
	}
	f.receipts[rid] = r
	f.pending[p.Pseudonym] = rid
	return *r, nil
}

// Status advances the erasure by one step per call.
func (f *fakeStore) Status(ctx context.Context, receipt string) (api.Receipt, error) {
	if v, ok, err := f.enter(ctx, "Status"); ok || err != nil {
		r, _ := v.(api.Receipt)
		return r, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.receipts[receipt]
	if !ok {
		return api.Receipt{}, api.ErrNotFound
	}
	if r.Status == api.ErasureCompleted {
		return *r, nil
	}
	now := f.clk.Now()
	r.Status = api.ErasureInProgress
	for i := range r.Steps {
		if r.Steps[i].Status != api.StepCompleted {
			r.Steps[i] = api.ErasureStep{Name: r.Steps[i].Name, Status: api.StepCompleted, At: now}
			if i+1 < len(r.Steps) {
				r.Steps[i+1] = api.ErasureStep{Name: r.Steps[i+1].Name, Status: api.StepInProgress, At: now}
			}
			break
		}
	}
	if r.Steps[len(r.Steps)-1].Status == api.StepCompleted {
		r.Status, r.CompletedAt = api.ErasureCompleted, now
		for id, p := range f.profiles {
			if p.Pseudonym == r.User {
				delete(f.profiles, id)
			}
		}
		delete(f.pending, r.User)
	}
	c := *r
	c.Steps = slices.Clone(r.Steps)
	return c, nil
}

func (f *fakeStore) set(fn func(f *fakeStore)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// Tokens of the test server.
const (
	tokRead    = "spt_read-token-0000000000000000000000000000"
	tokErase   = "spt_erase-token-000000000000000000000000000"
	tokAdmin   = "spt_admin-token-000000000000000000000000000"
	tokExpired = "spt_expired-token-0000000000000000000000000"
	tokLater   = "spt_expires-later-0000000000000000000000000"
)

func testTokens() []api.TokenSpec {
	return []api.TokenSpec{
		{Name: "reader", SHA256: api.HashToken(tokRead), Scopes: []api.Scope{api.ScopeProfilesRead}},
		{Name: "eraser", SHA256: api.HashToken(tokErase), Scopes: []api.Scope{api.ScopeProfilesErase}},
		{Name: "admin", SHA256: api.HashToken(tokAdmin), Scopes: []api.Scope{api.ScopeAdmin}},
		{Name: "expired", SHA256: api.HashToken(tokExpired), Scopes: []api.Scope{api.ScopeAdmin}, Expires: t0.Add(-time.Second)},
		{Name: "later", SHA256: api.HashToken(tokLater), Scopes: []api.Scope{api.ScopeProfilesRead}, Expires: t0.Add(time.Hour)},
	}
}

type env struct {
	srv   *api.Server
	store *fakeStore
	clk   *clock
	c     *contract
}

// newEnv builds a server over a fake store; edit adjusts the config.
func newEnv(t testing.TB, edit func(*api.Config)) *env {
	t.Helper()
	clk := &clock{t: t0}
	store := newFakeStore(t, clk)
	cfg := api.Config{Tokens: testTokens(), Now: clk.Now, RateLimit: -1}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := api.New(cfg, api.Backends{Profiles: store, Segments: store, Erasures: store})
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, store: store, clk: clk, c: loadContract(t)}
}

// do serves one request and checks the response against the contract.
func (e *env) do(t testing.TB, method, target, token string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return e.serve(t, req)
}

func (e *env) serve(t testing.TB, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if err := e.c.check(req, rec.Result()); err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return rec
}

func problemOf(t testing.TB, rec *httptest.ResponseRecorder) api.Problem {
	t.Helper()
	var p api.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body.String(), err)
	}
	return p
}

func decode[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes())) // leaves rec.Body for later checks
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
	return v
}

// contract validates responses against the embedded OpenAPI document.
type contract struct {
	doc     map[string]any
	comp    *jsonschema.Compiler
	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
}

var (
	contractOnce sync.Once
	contractVal  *contract
	contractErr  error
)

func loadContract(t testing.TB) *contract {
	t.Helper()
	contractOnce.Do(func() {
		b, err := api.OpenAPI()
		if err != nil {
			contractErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			contractErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		if err := c.AddResource("mem:///openapi.json", doc); err != nil {
			contractErr = err
			return
		}
		contractVal = &contract{doc: doc.(map[string]any), comp: c, schemas: map[string]*jsonschema.Schema{}}
	})
	if contractErr != nil {
		t.Fatal(contractErr)
	}
	return contractVal
}

// schema compiles the schema at a JSON pointer of the document.
func (c *contract) schema(ptr string) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.schemas[ptr]; ok {
		return s, nil
	}
	s, err := c.comp.Compile("mem:///openapi.json#" + ptr)
	if err != nil {
		return nil, err
	}
	c.schemas[ptr] = s
	return s, nil
}

func pointerEscape(s string) string {
	return url.PathEscape(strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1"))
}

// specPath returns the documented path that an escaped request path
// matches, or "".
func (c *contract) specPath(escaped string) string {
	paths := c.doc["paths"].(map[string]any)
	segs := strings.Split(escaped, "/")
	for p := range paths {
		ps := strings.Split(p, "/")
		if len(ps) != len(segs) {
			continue
		}
		ok := true
		for i := range ps {
			if strings.HasPrefix(ps[i], "{") {
				ok = ok && segs[i] != ""
			} else {
				ok = ok && ps[i] == segs[i]
			}
		}
		if ok {
			return p
		}
	}
	return ""
}

// check validates one response: every response is JSON of the documented
// content type; a documented operation documents the status; the body
// matches the documented schema; error bodies are problems whose status and
// type agree with the response.
func (c *contract) check(req *http.Request, resp *http.Response) error {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	ctype := resp.Header.Get("Content-Type")
	if resp.Header.Get("X-Request-Id") == "" {
		return errors.New("no X-Request-Id")
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		return errors.New("no Cache-Control: no-store")
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("status %d: body %q is not JSON: %v", resp.StatusCode, body, err)
	}
	if resp.StatusCode >= 400 {
		if ctype != "application/problem+json" {
			return fmt.Errorf("status %d with Content-Type %q", resp.StatusCode, ctype)
		}
		var p api.Problem
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		if p.Status != resp.StatusCode || p.Type != api.ProblemTypePrefix+string(p.Code) || p.Title != http.StatusText(p.Status) ||
			p.RequestID != resp.Header.Get("X-Request-Id") {
			return fmt.Errorf("problem %+v does not match status %d / request id", p, resp.StatusCode)
		}
	} else if ctype != "application/json" {
		return fmt.Errorf("status %d with Content-Type %q", resp.StatusCode, ctype)
	}
	ptr := "/components/schemas/Problem"
	if p := c.specPath(req.URL.EscapedPath()); p != "" {
		op, ok := c.doc["paths"].(map[string]any)[p].(map[string]any)[strings.ToLower(req.Method)].(map[string]any)
		if method := req.Method; method == "HEAD" {
			ok = false // answered by the GET route, without a body
		} else if method != strings.ToUpper(method) {
			ok = false // methods are case-sensitive: "get" is not GET
		}
		if ok {
			code := strconv.Itoa(resp.StatusCode)
			r, ok := op["responses"].(map[string]any)[code].(map[string]any)
			if !ok {
				return fmt.Errorf("status %d is not documented for %s %s", resp.StatusCode, req.Method, p)
			}
			base := "/paths/" + pointerEscape(p) + "/" + strings.ToLower(req.Method) + "/responses/" + code
			if ref, ok := r["$ref"].(string); ok {
				base = strings.TrimPrefix(ref, "#")
				r = c.lookup(base)
			}
			content, _ := r["content"].(map[string]any)
			if _, ok := content[ctype]; !ok {
				return fmt.Errorf("content type %q is not documented for %s %s %d", ctype, req.Method, p, resp.StatusCode)
			}
			ptr = base + "/content/" + pointerEscape(ctype) + "/schema"
			if h, ok := r["headers"].(map[string]any); ok {
				for name := range h {
					if resp.Header.Get(name) == "" {
						return fmt.Errorf("documented header %s missing", name)
					}
				}
			}
		} else if resp.StatusCode < 400 {
			return fmt.Errorf("undocumented method %s on %s answered %d", req.Method, p, resp.StatusCode)
		}
	} else if resp.StatusCode < 400 {
		return fmt.Errorf("undocumented path %s answered %d", req.URL.Path, resp.StatusCode)
	}
	sch, err := c.schema(ptr)
	if err != nil {
		return fmt.Errorf("compile %s: %v", ptr, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("body %s does not match %s: %v", body, ptr, err)
	}
	return nil
}

// lookup follows a JSON pointer into the document.
func (c *contract) lookup(ptr string) map[string]any {
	var v any = c.doc
	for _, p := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		m, _ := v.(map[string]any)
		v = m[p]
	}
	m, _ := v.(map[string]any)
	return m
}
