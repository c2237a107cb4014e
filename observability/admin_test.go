package observability

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newAdmin(t *testing.T, cfg AdminConfig) (*AdminServer, *httptest.Server) {
	t.Helper()
	if cfg.Registry == nil {
		reg := prometheus.NewRegistry()
		m, err := NewMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		m.TriggerEmitted("cart_abandon")
		cfg.Registry = reg
	}
	s, err := NewAdminServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	_, srv := newAdmin(t, AdminConfig{})
	tests := []struct {
		path        string
		header      []string
		status      int
		contains    string
		contentType string
	}{
		{path: "/healthz", status: 200, contains: "ok", contentType: "text/plain"},
		{path: "/readyz", status: 200, contains: `"status": "ready"`, contentType: "application/json"},
		{path: "/metrics", status: 200, contains: `streamprofile_triggers_emitted_total{kind="cart_abandon"} 1`, contentType: "text/plain"},
		{path: "/metrics", header: []string{"Accept", "application/openmetrics-text; version=1.0.0"}, status: 200,
			contains: "# EOF", contentType: "application/openmetrics-text"},
		{path: "/debug/pprof/", status: 200, contains: "goroutine"},
		{path: "/debug/pprof/goroutine?debug=1", status: 200, contains: "goroutine profile"},
		{path: "/debug/pprof/cmdline", status: 200},
		{path: "/debug/pprof/symbol", status: 200, contains: "num_symbols"},
		{path: "/nope", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+tt.path, tt.header...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body:\n%s", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body lacks %q:\n%.2000s", tt.contains, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
		})
	}
	resp, err := http.Post(srv.URL+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	fail := func(msg string) func(context.Context) error {
		return func(context.Context) error { return errors.New(msg) }
	}
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	release := make(chan struct{})
	defer close(release)
	deaf := func(context.Context) error { <-release; return nil } // ignores ctx until the test ends
	tests := []struct {
		name      string
		checks    []ReadinessCheck
		status    int
		failed    []string
		errSubstr map[string]string
	}{
		{name: "no checks", status: 200},
		{name: "all pass", checks: []ReadinessCheck{{"redis", ok}, {"model", ok}}, status: 200},
		{name: "one fails", checks: []ReadinessCheck{{"redis", fail("dial tcp 10.0.0.7:6379: connection refused")}, {"model", ok}},
			status: 503, failed: []string{"redis"}, errSubstr: map[string]string{"redis": "dial tcp [REDACTED]:6379: connection refused"}},
		{name: "several fail, sorted", checks: []ReadinessCheck{{"redis", fail("down")}, {"model", fail("no champion")}, {"caught_up", ok}},
			status: 503, failed: []string{"model", "redis"}},
		{name: "hung check times out", checks: []ReadinessCheck{{"kafka", hang}},
			status: 503, failed: []string{"kafka"}, errSubstr: map[string]string{"kafka": "timed out"}},
		{name: "check ignoring ctx is abandoned", checks: []ReadinessCheck{{"slow", deaf}},
			status: 503, failed: []string{"slow"}, errSubstr: map[string]string{"slow": "timed out"}},
		{name: "panicking check fails", checks: []ReadinessCheck{{"bad", func(context.Context) error { panic("boom") }}},
			status: 503, failed: []string{"bad"}, errSubstr: map[string]string{"bad": "boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newAdmin(t, AdminConfig{Checks: tt.checks, CheckTimeout: 50 * time.Millisecond})
			resp, body := get(t, srv.URL+"/readyz")
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			var rep ReadyReport
			if err := json.Unmarshal([]byte(body), &rep); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, body)
			}
			if !slices.Equal(rep.Failed, tt.failed) {
				t.Errorf("failed = %q, want %q", rep.Failed, tt.failed)
			}
			if wantStatus := map[bool]string{true: "ready", false: "not ready"}[tt.status == 200]; rep.Status != wantStatus {
				t.Errorf("status field %q, want %q", rep.Status, wantStatus)
			}
			if len(rep.Checks) != len(tt.checks) {
				t.Fatalf("%d check results, want %d", len(rep.Checks), len(tt.checks))
			}
			for i, c := range rep.Checks {
				if c.Name != tt.checks[i].Name {
					t.Errorf("result %d is %q, want %q (configuration order)", i, c.Name, tt.checks[i].Name)
				}
				if want := tt.errSubstr[c.Name]; want != "" && !strings.Contains(c.Error, want) {
					t.Errorf("check %s error %q lacks %q", c.Name, c.Error, want)
				}
				if c.OK == (c.Error != "") {
					t.Errorf("check %s: ok=%v with error %q", c.Name, c.OK, c.Error)
				}
			}
		})
	}
}

func TestAdminConfigValidate(t *testing.T) {
	reg := prometheus.NewRegistry()
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name  string
		cfg   AdminConfig
		field string
	}{
		{"no registry", AdminConfig{}, "AdminConfig.Registry"},
		{"unnamed check", AdminConfig{Registry: reg, Checks: []ReadinessCheck{{Check: ok}}}, "AdminConfig.Checks[0]"},
		{"nil check", AdminConfig{Registry: reg, Checks: []ReadinessCheck{{Name: "a"}}}, "AdminConfig.Checks[0]"},
		{"duplicate", AdminConfig{Registry: reg, Checks: []ReadinessCheck{{"a", ok}, {"a", ok}}}, "AdminConfig.Checks[1]"},
		{"valid", AdminConfig{Registry: reg, Checks: []ReadinessCheck{{"a", ok}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAdminServer(tt.cfg)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("err = %v, want a FieldError for %s", err, tt.field)
			}
		})
	}
	d := AdminConfig{}.WithDefaults()
	if d.Addr != ":9090" || d.CheckTimeout != 2*time.Second || d.ShutdownTimeout != 5*time.Second || d.ReadHeaderTimeout != 5*time.Second || d.Logger == nil {
		t.Errorf("defaults %+v", d)
	}
}

// TestAdminServeGracefulShutdown: cancelling the context lets an in-flight
// request finish, then Serve returns nil and the port is closed.
func TestAdminServeGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	slow := func(context.Context) error {
		close(started)
		<-release
		return nil
	}
	s, err := NewAdminServer(AdminConfig{Registry: prometheus.NewRegistry(), CheckTimeout: 10 * time.Second,
		Checks: []ReadinessCheck{{"slow", slow}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	type result struct {
		status int
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode}
	}()
	<-started
	cancel()
	time.AfterFunc(50*time.Millisecond, func() { close(release) })
	if r := <-inflight; r.err != nil || r.status != 200 {
		t.Errorf("in-flight request during shutdown: status %d err %v, want 200", r.status, r.err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil after graceful shutdown", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestAdminRunListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := NewAdminServer(AdminConfig{Registry: prometheus.NewRegistry(), Addr: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("Run on a port in use returned nil")
	}
}

func TestAdminRunServesOnAddr(t *testing.T) {
	// Find a free port, then let Run listen on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := NewAdminServer(AdminConfig{Registry: prometheus.NewRegistry(), Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("/healthz: %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run never served: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestLagCheck(t *testing.T) {
	tests := []struct {
		name     string
		assigned map[int]int64
		wantErr  []string
	}{
		{"nothing assigned", map[int]int64{}, nil},
		{"caught up", map[int]int64{0: 0, 1: 100}, nil},
		{"one behind", map[int]int64{0: 0, 3: 101}, []string{"partition 3: lag 101 > 100"}},
		{"unknown", map[int]int64{2: -1}, []string{"partition 2: lag not known yet"}},
		{"both, sorted", map[int]int64{5: 1000, 1: -1}, []string{"partition 1", "partition 5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := LagCheck(func() map[int]int64 { return tt.assigned }, 100)(context.Background())
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("err = nil")
			}
			msg := err.Error()
			last := -1
			for _, w := range tt.wantErr {
				i := strings.Index(msg, w)
				if i < 0 || i < last {
					t.Errorf("error %q lacks %q (in order)", msg, w)
				}
				last = i
			}
		})
	}
}
