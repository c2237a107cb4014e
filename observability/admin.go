package observability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/streamprofile/streamprofile/internal/httpserve"
)

// ReadinessCheck is one named condition of /readyz.
type ReadinessCheck struct {
	// Name identifies the check in the /readyz body, e.g. "redis".
	Name string
	// Check returns nil when the condition holds. It must honour ctx,
	// which ends after AdminConfig.CheckTimeout; one that does not is
	// reported as timed out and left to finish in the background.
	Check func(ctx context.Context) error
}

// AdminConfig configures the admin HTTP server. Every field states its
// default.
type AdminConfig struct {
	// Addr is the listen address. Default ":9090".
	Addr string
	// Registry is gathered by /metrics. Required (see NewRegistry).
	Registry prometheus.Gatherer
	// Checks are run, concurrently, by each /readyz request. Default none:
	// /readyz answers 200 once the server runs.
	Checks []ReadinessCheck
	// CheckTimeout bounds each readiness check. Default 2s.
	CheckTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown when Run's context ends:
	// in-flight requests get this long to finish. Default 5s.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	// (There is no write timeout, so /debug/pprof/profile?seconds=N works.)
	ReadHeaderTimeout time.Duration
	// Logger receives the server's errors. Default: discarded.
	Logger *slog.Logger
}

// WithDefaults returns c with zero fields set to their defaults.
func (c AdminConfig) WithDefaults() AdminConfig {
	if c.Addr == "" {
		c.Addr = ":9090"
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Validate reports missing or invalid settings; errors are *FieldError.
func (c AdminConfig) Validate() error {
	if c.Registry == nil {
		return &FieldError{Field: "AdminConfig.Registry", Reason: "required"}
	}
	seen := map[string]bool{}
	for i, ch := range c.Checks {
		if ch.Name == "" || ch.Check == nil {
			return &FieldError{Field: fmt.Sprintf("AdminConfig.Checks[%d]", i), Reason: "needs a Name and a Check"}
		}
		if seen[ch.Name] {
			return &FieldError{Field: fmt.Sprintf("AdminConfig.Checks[%d]", i), Reason: "duplicate name " + ch.Name}
		}
		seen[ch.Name] = true
	}
	return nil
}

// AdminServer serves the operational endpoints on their own mux:
//
//	/metrics        Prometheus exposition (promhttp; OpenMetrics with exemplars when asked)
//	/healthz        200 while the process serves HTTP (liveness)
//	/readyz         200 when every readiness check passes, else 503; JSON body
//	/debug/pprof/   net/http/pprof: index, cmdline, profile, symbol, trace, and heap, goroutine, ... by name
type AdminServer struct {
	cfg     AdminConfig
	handler http.Handler
}

// NewAdminServer returns the server for cfg.
func NewAdminServer(cfg AdminConfig) (*AdminServer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	cfg.Checks = append([]ReadinessCheck(nil), cfg.Checks...)
	s := &AdminServer{cfg: cfg}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.handler = mux
	return s, nil
}

// Handler returns the server's routes, for tests or to mount elsewhere.
func (s *AdminServer) Handler() http.Handler { return s.handler }

// Run listens on AdminConfig.Addr and serves until ctx is done, then shuts
// down gracefully (bounded by ShutdownTimeout) and returns nil. It returns
// the error when listening or serving fails.
func (s *AdminServer) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("observability: admin server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened; it closes ln.
func (s *AdminServer) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if err := httpserve.Serve(ctx, srv, func() error { return srv.Serve(ln) }, s.cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("observability: admin server: %w", err)
	}
	return nil
}

// CheckResult is one check's entry in the /readyz body.
type CheckResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Error is the check's error (with e-mail addresses and IPs masked),
	// when it failed.
	Error string `json:"error,omitempty"`
	// DurationMS is how long the check ran, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
}

// ReadyReport is the /readyz body.
type ReadyReport struct {
	// Status is "ready" or "not ready".
	Status string `json:"status"`
	// Failed names the failing checks, sorted; absent when ready.
	Failed []string      `json:"failed,omitempty"`
	Checks []CheckResult `json:"checks"`
}

func (s *AdminServer) readyz(w http.ResponseWriter, r *http.Request) {
	rep := s.Ready(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if len(rep.Failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

// Ready runs every readiness check concurrently, each bounded by
// CheckTimeout, and reports the results in configuration order. A check
// that panics fails with the panic's value.
func (s *AdminServer) Ready(ctx context.Context) ReadyReport {
	rep := ReadyReport{Status: "ready", Checks: make([]CheckResult, len(s.cfg.Checks))}
	var wg sync.WaitGroup
	for i, c := range s.cfg.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Checks[i] = runCheck(ctx, c, s.cfg.CheckTimeout)
		}()
	}
	wg.Wait()
	for _, c := range rep.Checks {
		if !c.OK {
			rep.Failed = append(rep.Failed, c.Name)
		}
	}
	if len(rep.Failed) > 0 {
		rep.Status = "not ready"
		sort.Strings(rep.Failed)
	}
	return rep
}

// runCheck runs c for at most timeout, even when c ignores its context.
func runCheck(ctx context.Context, c ReadinessCheck, timeout time.Duration) CheckResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1) // buffered: a late check does not block
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- c.Check(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("timed out after %s: %w", timeout, ctx.Err())
	}
	res := CheckResult{Name: c.Name, OK: err == nil, DurationMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		res.Error = RedactString(err.Error())
	}
	return res
}

// LagCheck returns a readiness check that passes when every partition that
// assigned reports (pass stream.Group.Assigned) lags by at most maxLag
// records. A member with no partitions is ready; a partition whose lag is
// not known yet (negative) is not.
func LagCheck(assigned func() map[int]int64, maxLag int64) func(context.Context) error {
	return func(context.Context) error {
		parts := assigned()
		ids := make([]int, 0, len(parts))
		for p := range parts {
			ids = append(ids, p)
		}
		sort.Ints(ids)
		var errs []error
		for _, p := range ids {
			switch lag := parts[p]; {
			case lag < 0:
				errs = append(errs, fmt.Errorf("partition %d: lag not known yet", p))
			case lag > maxLag:
				errs = append(errs, fmt.Errorf("partition %d: lag %d > %d", p, lag, maxLag))
			}
		}
		return errors.Join(errs...)
	}
}
