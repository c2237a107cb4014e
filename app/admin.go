package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/streamprofile/streamprofile/observability"
	"github.com/streamprofile/streamprofile/stream"
)

// AdminConfig configures a role's admin listener: /metrics, /healthz,
// /readyz and /debug/pprof/ (observability.AdminServer). Every field states
// its default.
type AdminConfig struct {
	// Addr is the listen address. Default ":9090". "off" or "-" disables
	// the listener; metrics are still collected (the demo's dashboard
	// reads them).
	Addr string `yaml:"addr"`
	// MaxLag is the most records an assigned partition may lag behind
	// its high watermark and still count as caught up for /readyz.
	// Default 1000.
	MaxLag int64 `yaml:"max_lag"`
	// CheckTimeout bounds each readiness check. Default 2s.
	CheckTimeout time.Duration `yaml:"check_timeout"`
	// Logger receives the server's errors. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// AdminOff is the AdminConfig.Addr that disables the listener.
const AdminOff = "off"

// WithDefaults returns c with zero fields set to their defaults.
func (c AdminConfig) WithDefaults() AdminConfig {
	if c.Addr == "" {
		c.Addr = ":9090"
	}
	if c.MaxLag <= 0 {
		c.MaxLag = 1000
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Disabled reports whether Addr turns the listener off.
func (c AdminConfig) Disabled() bool {
	a := strings.TrimSpace(strings.ToLower(c.Addr))
	return a == AdminOff || a == "-"
}

// Admin is a role's operational surface: a Prometheus registry holding the
// Go runtime metrics and every streamprofile_* metric
// (observability.Metrics), the readiness checks the role adds, and the
// admin server that exposes them. Create it with NewAdmin, add checks and
// register collectors while wiring the role, then run the role inside
// Serve.
type Admin struct {
	cfg     AdminConfig
	reg     *prometheus.Registry
	metrics *observability.Metrics

	mu     sync.Mutex
	checks []observability.ReadinessCheck
	bound  string // listening address, once Serve listens
}

// NewAdmin returns the admin of a role.
func NewAdmin(cfg AdminConfig) (*Admin, error) {
	cfg = cfg.WithDefaults()
	reg := observability.NewRegistry()
	m, err := observability.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Admin{cfg: cfg, reg: reg, metrics: m}, nil
}

// Config returns the effective configuration.
func (a *Admin) Config() AdminConfig { return a.cfg }

// Metrics returns the role's metrics; nil (which ignores every call) for a
// nil Admin.
func (a *Admin) Metrics() *observability.Metrics {
	if a == nil {
		return nil
	}
	return a.metrics
}

// Registry returns the registry /metrics serves.
func (a *Admin) Registry() *prometheus.Registry { return a.reg }

// AddCheck adds a readiness check to /readyz. Checks added after Serve
// started are not served.
func (a *Admin) AddCheck(c observability.ReadinessCheck) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, c)
}

// Addr returns the address the admin server listens on, once Serve has
// bound it ("" before, or when disabled).
func (a *Admin) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bound
}

// Server returns the admin server with the checks added so far.
func (a *Admin) Server() (*observability.AdminServer, error) {
	a.mu.Lock()
	checks := append([]observability.ReadinessCheck(nil), a.checks...)
	a.mu.Unlock()
	return observability.NewAdminServer(observability.AdminConfig{
		Addr: a.cfg.Addr, Registry: a.reg, Checks: checks, CheckTimeout: a.cfg.CheckTimeout, Logger: a.cfg.Logger,
	})
}

// Handler returns the admin routes with the checks added so far (tests,
// or to mount them elsewhere).
func (a *Admin) Handler() (http.Handler, error) {
	s, err := a.Server()
	if err != nil {
		return nil, err
	}
	return s.Handler(), nil
}

// Serve runs run(ctx) with the admin server listening beside it (unless
// disabled; a nil Admin just runs run). The server stops when run returns;
// a listener that cannot bind fails before run starts. It returns run's
// error, joined with the server's.
func (a *Admin) Serve(ctx context.Context, run func(context.Context) error) error {
	if a == nil || a.cfg.Disabled() {
		return run(ctx)
	}
	srv, err := a.Server()
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen on %s: %w", a.cfg.Addr, err)
	}
	a.mu.Lock()
	a.bound = ln.Addr().String()
	a.mu.Unlock()
	a.cfg.Logger.Info("admin server listening", "addr", a.bound)
	sctx, stop := context.WithCancel(ctx)
	var g errgroup.Group
	g.Go(func() error { return srv.Serve(sctx, ln) })
	runErr := run(ctx)
	stop()
	return errors.Join(runErr, g.Wait())
}

// Readiness checks of the roles.

// GroupCaughtUp is the readiness check name: ready once the member has
// joined its consumer group and every partition assigned to it lags by at
// most maxLag records (a member with no partitions is ready once joined).
// Names must differ within one Admin (ingest uses "partitions", train
// "trainer-partitions").
func GroupCaughtUp(name string, g *stream.Group, maxLag int64) observability.ReadinessCheck {
	lag := observability.LagCheck(g.Assigned, maxLag)
	return observability.ReadinessCheck{Name: name, Check: func(ctx context.Context) error {
		if !g.Joined() {
			return errors.New("not joined to the consumer group yet")
		}
		return lag(ctx)
	}}
}

// RedisReachable is the readiness check name: ready while rdb answers
// PING.
func RedisReachable(name string, rdb redis.UniversalClient) observability.ReadinessCheck {
	return observability.ReadinessCheck{Name: name, Check: func(ctx context.Context) error {
		return rdb.Ping(ctx).Err()
	}}
}

// ModelLoaded is the readiness check "model": ready once loaded returns nil
// (for the score and serve roles: a champion model is loaded).
func ModelLoaded(loaded func() error) observability.ReadinessCheck {
	return observability.ReadinessCheck{Name: "model", Check: func(context.Context) error { return loaded() }}
}

// Telemetry is what a role reports through. The zero value is off: no
// spans, no metrics, no admin server.
type Telemetry struct {
	// Tracing creates the role's spans (SetupTelemetry: from OTEL_*).
	// Default nil: tracing off.
	Tracing trace.TracerProvider
	// Admin collects the role's metrics and readiness checks. Default nil.
	Admin *Admin
}

// Tracer returns the pipeline tracer of the role's consumer group.
func (t Telemetry) Tracer(group string) *observability.Tracer {
	return observability.NewTracer(observability.TracerConfig{Provider: t.Tracing, ConsumerGroup: group})
}

// SetupTelemetry prepares a role's telemetry: tracing configured by the
// standard OTEL_* environment variables (observability.SetupTracing, with
// service as the default service name) and the admin of cfg. Run the role
// inside Telemetry.Admin.Serve and call shutdown, with a context that is
// not cancelled, once it returns: it flushes pending spans.
func SetupTelemetry(ctx context.Context, service string, cfg AdminConfig) (Telemetry, func(context.Context) error, error) {
	tp, shutdown, err := observability.SetupTracing(ctx, service)
	if err != nil {
		return Telemetry{}, nil, err
	}
	a, err := NewAdmin(cfg)
	if err != nil {
		_ = shutdown(ctx)
		return Telemetry{}, nil, err
	}
	return Telemetry{Tracing: tp, Admin: a}, shutdown, nil
}
