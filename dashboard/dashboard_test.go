package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/api"
)

// fakeSource is a Source whose readings the test sets.
type fakeSource struct {
	mu       sync.Mutex
	p        Pipeline
	l        Learning
	segments []Segment
}

func (f *fakeSource) Pipeline() Pipeline {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.p
}

func (f *fakeSource) Learning() Learning {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.l
}

func (f *fakeSource) Segments() []Segment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.segments
}

// fakeClock advances by step at each reading.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
}

// fakeProfiles answers from a map.
type fakeProfiles struct {
	profiles map[string]*api.Profile
	err      error
	asked    []string
}

func (f *fakeProfiles) Profile(_ context.Context, id string) (*api.Profile, error) {
	f.asked = append(f.asked, id)
	if f.err != nil {
		return nil, f.err
	}
	if p, ok := f.profiles[id]; ok {
		return p, nil
	}
	return nil, api.ErrNotFound
}

func TestQuantile(t *testing.T) {
	bounds := []float64{0.001, 0.01, 0.1, 1}
	for _, tc := range []struct {
		name   string
		counts []uint64
		count  uint64
		q      float64
		want   float64
		ok     bool
	}{
		{"empty", []uint64{0, 0, 0, 0}, 0, 0.5, 0, false},
		{"all in the first bucket interpolate from 0", []uint64{10, 10, 10, 10}, 10, 0.5, 0.0005, true},
		{"median in the second bucket", []uint64{2, 6, 10, 10}, 10, 0.5, 0.001 + 0.009*3/4, true},
		{"p99 at the top of the third bucket", []uint64{0, 0, 100, 100}, 100, 0.99, 0.01 + 0.09*0.99, true},
		{"rank in +Inf: the largest bound", []uint64{1, 1, 1, 1}, 10, 0.99, 1, true},
		{"empty buckets are skipped", []uint64{0, 0, 4, 4}, 4, 0, 0.01, true},
		{"q out of range", []uint64{1, 1, 1, 1}, 1, 1.5, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Histogram{Bounds: bounds, Counts: tc.counts, Count: tc.count}.Quantile(tc.q)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("Quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestQuantileProperties: on random histograms the estimate grows with q
// and stays within [0, largest bound].
func TestQuantileProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	bounds := []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	for range 500 {
		h := Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds))}
		var c uint64
		for i := range bounds {
			c += uint64(r.IntN(5))
			h.Counts[i] = c
		}
		h.Count = c + uint64(r.IntN(3))
		prev := -1.0
		for q := 0.0; q <= 1; q += 0.05 {
			v, ok := h.Quantile(q)
			if h.Count == 0 {
				if ok {
					t.Fatal("empty histogram gave a quantile")
				}
				break
			}
			if !ok || v < prev-1e-12 || v < 0 || v > bounds[len(bounds)-1] {
				t.Fatalf("%+v: Quantile(%v) = %v, %v after %v", h, q, v, ok, prev)
			}
			prev = v
		}
	}
}

func TestHistogramSince(t *testing.T) {
	b := []float64{1, 2}
	prev := Histogram{Bounds: b, Counts: []uint64{1, 3}, Count: 4}
	now := Histogram{Bounds: b, Counts: []uint64{2, 7}, Count: 9}
	if d := now.since(prev); !slices.Equal(d.Counts, []uint64{1, 4}) || d.Count != 5 {
		t.Errorf("since = %+v, want counts [1 4] of 5", d)
	}
	restarted := Histogram{Bounds: b, Counts: []uint64{0, 1}, Count: 1}
	if d := restarted.since(prev); d.Count != 1 || !slices.Equal(d.Counts, restarted.Counts) {
		t.Errorf("after a restart since = %+v, want the new histogram itself", d)
	}
}

// TestRing: a ring keeps the newest n items, in order.
func TestRing(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		n := 1 + r.IntN(8)
		adds := r.IntN(30)
		g := newRing[int](n)
		var all []int
		for i := range adds {
			g.add(i)
			all = append(all, i)
		}
		want := all[max(0, len(all)-n):]
		if got := g.oldestFirst(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("n=%d adds=%d: oldestFirst %v, want %v", n, adds, got, want)
		}
		rev := slices.Clone(want)
		slices.Reverse(rev)
		if got := g.newestFirst(); !slices.Equal(got, rev) && !(len(got) == 0 && len(rev) == 0) {
			t.Fatalf("newestFirst %v, want %v", got, rev)
		}
	}
}

func newTestServer(t *testing.T, src *fakeSource, clk *fakeClock, profiles api.Profiles) *Server {
	t.Helper()
	s, err := New(Config{Source: src, Now: clk.now, Window: 2, History: 3, Recent: 2, Profiles: profiles, Title: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSampleAndStats: rates span the window, quantiles the window's new
// observations, history is bounded, AUCs JSON cannot carry are dropped, and
// changes and triggers are kept newest first.
func TestSampleAndStats(t *testing.T) {
	src := &fakeSource{}
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0), step: time.Second}
	s := newTestServer(t, src, clk, nil)
	if st := s.Stats(); st.Now.Lag != -1 || len(st.History) != 0 || st.Learning.Curve == nil {
		t.Errorf("before any sample: %+v", st)
	}
	bounds := []float64{0.01, 0.1, 1}
	for i, consumed := range []int64{0, 100, 300, 600, 1000} {
		src.mu.Lock()
		src.p = Pipeline{Consumed: consumed, Lag: int64(50 - i*10),
			Latency: Histogram{Bounds: bounds, Counts: []uint64{uint64(i * 10), uint64(i * 10), uint64(i * 10)}, Count: uint64(i * 10)}}
		src.mu.Unlock()
		s.Sample()
		clk.advance()
	}
	src.l = Learning{Task: "purchase_propensity", Curve: []CurvePoint{{Evaluated: 10, AUC: map[string]float64{"network": 0.7, "bgnbd": math.NaN()}}}}
	src.segments = []Segment{{Name: "vip", Members: 3}}
	s.Sample()
	for i := range 3 {
		s.RecordChange(Change{User: "u", Segment: "vip", Change: "enter", Reason: string(rune('a' + i))})
		s.RecordTrigger(Trigger{Kind: "k", Explanation: string(rune('a' + i))})
	}
	st := s.Stats()
	if len(st.History) != 3 {
		t.Fatalf("history of %d points, want 3", len(st.History))
	}
	// Readings at t = 0..5 s consumed 0, 100, 300, 600, 1000, 1000; a
	// window spans the last two intervals: now 600 → 1000 over 2 s.
	if got := st.Now.EPS; got != 200 {
		t.Errorf("events/s now %v, want 200", got)
	}
	if got := st.History[0].EPS; got != 250 {
		t.Errorf("events/s at the third sample %v, want (600-100)/2 = 250", got)
	}
	if st.History[1].P50 == nil || *st.History[1].P50 != 5 {
		t.Errorf("p50 %v ms, want 5 (20 new observations below 10 ms)", st.History[1].P50)
	}
	if st.Now.P50 == nil || *st.Now.P50 != 5 {
		t.Errorf("p50 now %v ms, want 5 (10 new observations below 10 ms in the window)", st.Now.P50)
	}
	if st.Now.Lag != 10 || st.Pipeline.Consumed != 1000 {
		t.Errorf("now lag %d consumed %d", st.Now.Lag, st.Pipeline.Consumed)
	}
	if _, ok := st.Learning.Curve[0].AUC["bgnbd"]; ok || st.Learning.Curve[0].AUC["network"] != 0.7 {
		t.Errorf("curve %+v: NaN kept or network lost", st.Learning.Curve)
	}
	if len(st.Changes) != 2 || st.Changes[0].Reason != "c" || st.Triggers[1].Explanation != "b" {
		t.Errorf("rings: changes %+v triggers %+v, want the newest two, newest first", st.Changes, st.Triggers)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Errorf("stats do not encode: %v", err)
	}
	// Nothing new for a whole window: no rate, no quantile.
	s.Sample()
	s.Sample()
	if st := s.Stats(); st.Now.EPS != 0 || st.Now.P50 != nil || st.Now.P99 != nil {
		t.Errorf("idle window: %+v", st.Now)
	}
}

func do(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w
}

func TestRoutes(t *testing.T) {
	profiles := &fakeProfiles{profiles: map[string]*api.Profile{
		"541312140": {ID: "541312140", Features: map[string]float64{"views_total": 3}},
	}}
	s := newTestServer(t, &fakeSource{}, &fakeClock{t: time.Unix(0, 0)}, profiles)
	s.Sample()
	h := s.Handler()
	for _, tc := range []struct {
		method, target string
		code           int
		ctype, body    string
	}{
		{"GET", "/", 200, "text/html", `<script src="/static/app.js"`},
		{"GET", "/static/app.js", 200, "javascript", "/api/stats"},
		{"GET", "/static/style.css", 200, "text/css", ".tiles"},
		{"GET", "/api/stats", 200, "application/json", `"title":"test"`},
		{"GET", "/api/profile?id=541312140", 200, "application/json", `"views_total":3`},
		{"GET", "/api/profile?id=nobody", 404, "application/json", "no profile"},
		{"GET", "/api/profile", 400, "application/json", "give the profile's id"},
		{"GET", "/api/profile?id=" + strings.Repeat("x", MaxIDLen+1), 400, "application/json", "1 to 256 bytes"},
		{"GET", "/api/profile?id=%ff", 400, "application/json", "UTF-8"},
		{"POST", "/api/stats", 405, "", ""},
		{"GET", "/nope", 404, "", ""},
		{"GET", "/static/dashboard.go", 404, "", ""},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			w := do(t, h, tc.method, tc.target)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.code, w.Body)
			}
			if !strings.Contains(w.Header().Get("Content-Type"), tc.ctype) || !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("content type %q body %.200q, want %q containing %q", w.Header().Get("Content-Type"), w.Body, tc.ctype, tc.body)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("CSP %q", csp)
			}
		})
	}
	if len(profiles.asked) != 2 || profiles.asked[0] != "541312140" {
		t.Errorf("backend asked %q", profiles.asked)
	}
}

// TestProfileUnavailable: no backend, or a failing one, answers 503
// without the error's text.
func TestProfileUnavailable(t *testing.T) {
	for _, p := range []api.Profiles{nil, &fakeProfiles{err: errors.New("redis: dial tcp 10.1.2.3:6379: refused")}} {
		s, err := New(Config{Source: &fakeSource{}, Profiles: p, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		w := do(t, s.Handler(), "GET", "/api/profile?id=u1")
		if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "10.1.2.3") {
			t.Errorf("status %d body %s", w.Code, w.Body)
		}
	}
}

func TestNewWithoutSource(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrNoSource) {
		t.Errorf("New without a source: %v", err)
	}
}

// TestServe: the server samples while it serves and stops when its
// context ends.
func TestServe(t *testing.T) {
	src := &fakeSource{p: Pipeline{Consumed: 7}}
	s, err := New(Config{Source: src, Sample: 10 * time.Millisecond, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	u := url.URL{Scheme: "http", Host: ln.Addr().String(), Path: "/api/stats"}
	var st Stats
	for i := 0; i < 100 && st.Pipeline.Consumed != 7; i++ {
		resp, err := http.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if st.Pipeline.Consumed != 7 || s.Addr() != ln.Addr().String() {
		t.Errorf("stats %+v addr %q", st.Pipeline, s.Addr())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// FuzzProfileID: any query answers 200, 400 or 404 (never a server error),
// and an id that reaches the backend is exactly the decoded parameter.
func FuzzProfileID(f *testing.F) {
	for _, s := range []string{"541312140", "", "a b", "%ff", "u%00", strings.Repeat("é", 200), "x&id=y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		profiles := &fakeProfiles{profiles: map[string]*api.Profile{"541312140": {ID: "541312140"}}}
		s, err := New(Config{Source: &fakeSource{}, Profiles: profiles})
		if err != nil {
			t.Fatal(err)
		}
		q := url.Values{"id": {raw}}.Encode()
		w := do(t, s.Handler(), "GET", "/api/profile?"+q)
		switch w.Code {
		case 200, 404:
			if len(profiles.asked) != 1 || profiles.asked[0] != raw {
				t.Fatalf("backend asked %q for %q", profiles.asked, raw)
			}
		case 400:
			if len(profiles.asked) != 0 {
				t.Fatalf("a rejected id reached the backend: %q", raw)
			}
		default:
			t.Fatalf("status %d for %q", w.Code, raw)
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q is not JSON: %v", w.Body, err)
		}
	})
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
