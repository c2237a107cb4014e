package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
)

func specDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func testServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{Tokens: []TokenSpec{{Name: "a", SHA256: HashToken("t"), Scopes: []Scope{ScopeAdmin}}}},
		Backends{Profiles: nopBackend{}, Segments: nopBackend{}, Erasures: nopBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSpecMatchesRoutes: every route the server registers is documented
// with its method and scope, and every documented operation is a route the
// mux serves.
func TestSpecMatchesRoutes(t *testing.T) {
	doc := specDoc(t)
	s := testServer(t)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi %v, want 3.1.0", doc["openapi"])
	}
	paths := doc["paths"].(map[string]any)
	documented := map[string]string{} // "METHOD path" → scope ("" public)
	for p, item := range paths {
		for m, op := range item.(map[string]any) {
			if m == "parameters" {
				continue
			}
			scope := "?"
			sec, ok := op.(map[string]any)["security"].([]any)
			switch {
			case !ok:
				t.Errorf("%s %s: no security requirement", m, p)
			case len(sec) == 0:
				scope = ""
			case len(sec) == 1:
				scopes := sec[0].(map[string]any)["bearerAuth"].([]any)
				if len(scopes) == 1 {
					scope = scopes[0].(string)
				}
			}
			documented[strings.ToUpper(m)+" "+p] = scope
		}
	}
	served := map[string]string{}
	for _, rt := range s.routes {
		served[rt.method+" "+rt.path] = string(rt.scope)
	}
	for k, scope := range served {
		if d, ok := documented[k]; !ok {
			t.Errorf("route %s is not documented", k)
		} else if d != scope {
			t.Errorf("route %s needs scope %q, documented %q", k, scope, d)
		}
	}
	for k := range documented {
		if _, ok := served[k]; !ok {
			t.Errorf("documented %s is not a route", k)
		}
	}
	// The mux itself serves each documented operation (with the path
	// parameters filled in) rather than falling back.
	for k := range documented {
		method, p, _ := strings.Cut(k, " ")
		target := strings.NewReplacer("{id}", "x", "{name}", "x", "{receipt}", "x").Replace(p)
		req := httptest.NewRequest(method, target, nil)
		if _, pattern := s.mux.Handler(req); pattern != k {
			t.Errorf("mux serves %s %s with pattern %q, want %q", method, target, pattern, k)
		}
	}
}

// TestSpecProblemCodes: the documented codes are exactly the Code constants
// the server uses.
func TestSpecProblemCodes(t *testing.T) {
	doc := specDoc(t)
	enum := doc["components"].(map[string]any)["schemas"].(map[string]any)["Problem"].(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)["enum"].([]any)
	var got []string
	for _, c := range enum {
		got = append(got, c.(string))
	}
	want := []string{string(CodeBadRequest), string(CodeUnauthorized), string(CodeForbidden), string(CodeNotFound),
		string(CodeMethodNotAllowed), string(CodePayloadTooLarge), string(CodeRateLimited), string(CodeInternal),
		string(CodeUnavailable), string(CodeTimeout)}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("documented codes %v, want %v", got, want)
	}
}

// TestSpecServed: GET /openapi.json serves the embedded document.
func TestSpecServed(t *testing.T) {
	s := testServer(t)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	want, _ := OpenAPI()
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Fatalf("status %d, %d bytes, want %d", rec.Code, rec.Body.Len(), len(want))
	}
}

func TestJSONValueRejectsNonStringKeys(t *testing.T) {
	for _, v := range []any{map[any]any{200: "x"}, []any{map[string]any{"a": map[any]any{1: 2}}}, struct{}{}} {
		if _, err := jsonValue(v); err == nil {
			t.Errorf("jsonValue(%v) accepted", v)
		}
	}
}
