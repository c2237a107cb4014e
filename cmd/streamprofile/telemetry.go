package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/streamprofile/streamprofile/app"
)

// telemetryFlags are the observability flags of a role: the admin
// listener. Tracing is configured by the standard OTEL_* environment
// variables (observability.SetupTracing), logging by --log-format.
type telemetryFlags struct {
	adminAddr string
}

func (t *telemetryFlags) register(fs *flag.FlagSet, def string) {
	fs.StringVar(&t.adminAddr, "admin-addr", def, `listen address of /metrics, /healthz, /readyz and /debug/pprof/ ("off" disables)`)
}

// setup starts the role's tracing and prepares its admin. Call stop once
// the role has returned: it flushes pending spans.
func (t *telemetryFlags) setup(ctx context.Context, service string, log *slog.Logger) (tel app.Telemetry, stop func(), err error) {
	tel, shutdown, err := app.SetupTelemetry(ctx, service, app.AdminConfig{Addr: t.adminAddr, Logger: log})
	if err != nil {
		return app.Telemetry{}, nil, usageError{err}
	}
	return tel, func() {
		if err := shutdown(context.WithoutCancel(ctx)); err != nil {
			log.Warn("tracing shutdown", "err", err)
		}
	}, nil
}
