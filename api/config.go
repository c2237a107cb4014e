package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Limits on request parts.
const (
	// MaxIDLen is the longest profile id accepted in a path, in bytes (the
	// event schema's field limit).
	MaxIDLen = 1024
	// MaxCursorLen is the longest cursor accepted, in bytes.
	MaxCursorLen = 1024
	// MaxReceiptLen is the longest receipt id, in bytes.
	MaxReceiptLen = 128
	// MaxSegmentNameLen is the longest segment name, in bytes (the
	// catalogue's limit).
	MaxSegmentNameLen = 64
)

// Config configures a Server. Only one of TokensFile and Tokens is needed.
type Config struct {
	// Addr is the listen address of Run. Default ":8080".
	Addr string `yaml:"addr"`
	// TokensFile is a YAML token file (see TokenSpec), read by New and by
	// ReloadTokens. Default "": use Tokens.
	TokensFile string `yaml:"tokens_file"`
	// Tokens are the accepted tokens when TokensFile is "". Default none;
	// at least one token must be configured one way or the other.
	Tokens []TokenSpec `yaml:"-"`
	// TLSCertFile and TLSKeyFile are PEM files of the server certificate
	// (chain) and key; both set: HTTPS (TLS 1.2 or later), both empty
	// (default): plain HTTP, for use behind a TLS-terminating proxy or
	// mesh. They are read by New; a renewed certificate needs a restart.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// RequestTimeout bounds every backend call; past it the request ends
	// with 504 timeout. Default 2s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request. Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response; at least RequestTimeout. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default
	// 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds the graceful shutdown of Run and Serve: past
	// it, open connections are closed. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxHeaderBytes bounds request headers. Default 16 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes is the largest request body accepted (and ignored: no
	// route reads a body); larger bodies get 413. Default 1 KiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RateLimit is each token's sustained request rate, per second.
	// Negative disables rate limiting. Default 50.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is how many requests a token may make at once. Default
	// 2 × RateLimit, at least 1.
	RateBurst int `yaml:"rate_burst"`
	// DefaultPageSize is the page size of segment members without ?limit.
	// Default 100.
	DefaultPageSize int `yaml:"default_page_size"`
	// MaxPageSize is the largest ?limit accepted. Default 1000.
	MaxPageSize int `yaml:"max_page_size"`
	// Logger receives 5xx errors and server errors, never request ids
	// from paths or tokens. Default: discard.
	Logger *slog.Logger `yaml:"-"`
	// Now is the clock for token expiry and rate limits. Default time.Now.
	Now func() time.Time `yaml:"-"`
	// Middleware wraps the server's handler in Run and Serve (tracing,
	// request metrics); it sees every request, before authentication.
	// Default nil: none.
	Middleware func(http.Handler) http.Handler `yaml:"-"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.RequestTimeout, 2*time.Second)
	setDur(&c.ReadHeaderTimeout, 5*time.Second)
	setDur(&c.ReadTimeout, 10*time.Second)
	setDur(&c.WriteTimeout, 10*time.Second)
	setDur(&c.IdleTimeout, 120*time.Second)
	setDur(&c.ShutdownTimeout, 10*time.Second)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 10
	}
	if c.RateLimit == 0 {
		c.RateLimit = 50
	}
	if c.RateBurst == 0 {
		c.RateBurst = max(1, int(2*c.RateLimit))
	}
	if c.DefaultPageSize == 0 {
		c.DefaultPageSize = 100
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports invalid settings (after defaults). It does not read the
// token or TLS files; New does.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: "Config." + field, Reason: fmt.Sprintf(format, args...)}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RequestTimeout", c.RequestTimeout}, {"ReadHeaderTimeout", c.ReadHeaderTimeout},
		{"ReadTimeout", c.ReadTimeout}, {"WriteTimeout", c.WriteTimeout},
		{"IdleTimeout", c.IdleTimeout}, {"ShutdownTimeout", c.ShutdownTimeout},
	} {
		if d.v < 0 {
			return bad(d.name, "negative duration %s", d.v)
		}
	}
	if c.WriteTimeout < c.RequestTimeout {
		return bad("WriteTimeout", "%s is shorter than RequestTimeout %s: timeouts could not be reported", c.WriteTimeout, c.RequestTimeout)
	}
	if c.MaxHeaderBytes < 1024 {
		return bad("MaxHeaderBytes", "%d is below 1024", c.MaxHeaderBytes)
	}
	if c.MaxBodyBytes < 0 {
		return bad("MaxBodyBytes", "negative")
	}
	if c.RateBurst < 0 {
		return bad("RateBurst", "negative")
	}
	if c.DefaultPageSize < 1 || c.MaxPageSize < 1 || c.DefaultPageSize > c.MaxPageSize {
		return bad("DefaultPageSize", "%d must be in [1, MaxPageSize=%d]", c.DefaultPageSize, c.MaxPageSize)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return bad("TLSCertFile", "TLSCertFile and TLSKeyFile must be set together")
	}
	if c.TokensFile == "" && len(c.Tokens) == 0 {
		return bad("Tokens", "no API token configured (set TokensFile or Tokens)")
	}
	if c.TokensFile != "" && len(c.Tokens) > 0 {
		return bad("Tokens", "set TokensFile or Tokens, not both")
	}
	for i, t := range c.Tokens {
		if err := t.validate(); err != nil {
			return bad(fmt.Sprintf("Tokens[%d]", i), "%v", err)
		}
	}
	return nil
}
