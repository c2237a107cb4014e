package api

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/streamprofile/streamprofile/internal/httpserve"
)

// route is one endpoint. Its path uses the syntax that http.ServeMux and
// OpenAPI share ("/v1/profiles/{id}").
type route struct {
	method string
	path   string
	scope  Scope // "": no token needed
	handle http.HandlerFunc
}

// Server is the profile HTTP API. It is an http.Handler; Run and Serve
// run it with the configured timeouts and TLS.
type Server struct {
	cfg       Config
	b         Backends
	log       *slog.Logger
	auth      atomic.Pointer[authenticator]
	mux       *http.ServeMux
	routes    []route
	spec      []byte // the OpenAPI document as JSON
	tls       *tls.Config
	ridPrefix string
	ridSeq    atomic.Uint64
}

// New checks cfg and the backends, reads the token file and TLS files, and
// returns a server ready to serve.
func New(cfg Config, b Backends) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if b.Profiles == nil || b.Segments == nil || b.Erasures == nil {
		return nil, &ConfigError{Field: "Backends", Reason: "Profiles, Segments and Erasures are all required"}
	}
	s := &Server{cfg: cfg, b: b, log: cfg.Logger}
	if err := s.ReloadTokens(); err != nil {
		return nil, err
	}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, &ConfigError{Field: "Config.TLSCertFile", Reason: err.Error()}
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	spec, err := openAPIJSON()
	if err != nil {
		return nil, fmt.Errorf("api: embedded OpenAPI document: %w", err)
	}
	s.spec = spec
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("api: request id prefix: %w", err)
	}
	s.ridPrefix = hex.EncodeToString(rnd[:]) + "-"

	s.routes = []route{
		{http.MethodGet, "/v1/profiles/{id}", ScopeProfilesRead, s.getProfile},
		{http.MethodDelete, "/v1/profiles/{id}", ScopeProfilesErase, s.deleteProfile},
		{http.MethodGet, "/v1/segments", ScopeProfilesRead, s.listSegments},
		{http.MethodGet, "/v1/segments/{name}/members", ScopeProfilesRead, s.segmentMembers},
		{http.MethodGet, "/v1/erasures/{receipt}", ScopeProfilesErase, s.getErasure},
		{http.MethodGet, "/healthz", "", s.health},
		{http.MethodGet, "/openapi.json", "", s.openAPI},
	}
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		h := rt.handle
		if rt.scope != "" {
			h = s.guard(rt.scope, h)
		}
		s.mux.HandleFunc(rt.method+" "+rt.path, h)
	}
	s.mux.HandleFunc("/", s.fallback)
	return s, nil
}

// ReloadTokens reads Config.TokensFile again and replaces the accepted
// tokens at once; on error the old tokens stay. Rate limits of tokens that
// keep their name carry over. With Config.Tokens it rebuilds from those.
// Wire it to SIGHUP to rotate tokens without a restart.
func (s *Server) ReloadTokens() error {
	specs := s.cfg.Tokens
	if s.cfg.TokensFile != "" {
		var err error
		if specs, err = LoadTokenFile(s.cfg.TokensFile); err != nil {
			return err
		}
		if len(specs) == 0 {
			return &TokenFileError{File: s.cfg.TokensFile, Reason: "no token listed"}
		}
	}
	a, err := newAuthenticator(specs, s.cfg.RateLimit, s.cfg.RateBurst, s.cfg.Now(), s.auth.Load())
	if err != nil {
		return err
	}
	s.auth.Store(a)
	return nil
}

// ReloadTokensOn calls ReloadTokens each time reload delivers a signal
// (wire it to SIGHUP with signal.Notify) until ctx is done, and logs the
// outcome; a failed reload keeps the tokens in use.
func (s *Server) ReloadTokensOn(ctx context.Context, reload <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-reload:
			if err := s.ReloadTokens(); err != nil {
				s.log.Error("api: reloading the tokens failed; the tokens in use stay", "signal", sig, "err", err)
			} else {
				s.log.Info("api: tokens reloaded", "signal", sig)
			}
		}
	}
}

// Handler returns the server's handler, for tests or to mount it behind
// other middleware. It is the Server itself.
func (s *Server) Handler() http.Handler { return s }

// Run listens on Config.Addr and serves until ctx is done, then shuts down
// gracefully. See Serve.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("api: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (over TLS when configured) until ctx is done, then
// stops accepting, lets requests in flight finish within
// Config.ShutdownTimeout, closes ln and returns nil. It returns the error
// when serving fails.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var h http.Handler = s
	if s.cfg.Middleware != nil {
		h = s.cfg.Middleware(s)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		TLSConfig:         s.tls,
		// "OPTIONS *" reaches the handler too, which answers with a problem.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	serve := func() error { return srv.Serve(ln) }
	if s.tls != nil {
		serve = func() error { return srv.ServeTLS(ln, "", "") }
	}
	if err := httpserve.Serve(ctx, srv, serve, s.cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

// statusWriter notes whether a response was started, so that a panic can
// still be answered.
type statusWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP serves one request: common headers, path and body checks, then
// the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := s.ridPrefix + strconv.FormatUint(s.ridSeq.Add(1), 36)
	h := w.Header()
	h.Set("X-Request-Id", rid)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("api: panic serving request", "request_id", rid, "panic", fmt.Sprint(p))
			if !sw.wrote {
				s.problem(sw, http.StatusInternalServerError, CodeInternal, "internal error")
			}
		}
	}()
	if r.URL == nil || !strings.HasPrefix(r.URL.Path, "/") || path.Clean(r.URL.Path) != r.URL.Path {
		// Not a path any route has ("*", "/a//b", "/a/"); answer here
		// rather than let the mux redirect or answer without a body.
		s.problem(sw, http.StatusNotFound, CodeNotFound, "no such resource")
		return
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		s.problem(sw, http.StatusRequestEntityTooLarge, CodePayloadTooLarge, fmt.Sprintf("request body above %d bytes", s.cfg.MaxBodyBytes))
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		n, err := io.Copy(io.Discard, io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
		if n > s.cfg.MaxBodyBytes {
			s.problem(sw, http.StatusRequestEntityTooLarge, CodePayloadTooLarge, fmt.Sprintf("request body above %d bytes", s.cfg.MaxBodyBytes))
			return
		}
		if err != nil {
			s.problem(sw, http.StatusBadRequest, CodeBadRequest, "unreadable request body")
			return
		}
	}
	s.mux.ServeHTTP(sw, r)
}

// guard authenticates the request, applies the token's rate limit and
// checks scope before h.
func (s *Server) guard(scope Scope, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := s.cfg.Now()
		c, res := s.auth.Load().authenticate(r, now)
		switch res {
		case authMissing:
			s.unauthorized(w, "", "missing bearer token")
			return
		case authMalformed:
			s.unauthorized(w, "invalid_request", "malformed Authorization header: want \"Bearer <token>\"")
			return
		case authUnknown:
			s.unauthorized(w, "invalid_token", "invalid token")
			return
		case authExpired:
			s.unauthorized(w, "invalid_token", "token expired")
			return
		}
		if c.limiter != nil {
			if ok, wait := c.limiter.take(now); !ok {
				w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(wait), 10))
				s.problem(w, http.StatusTooManyRequests, CodeRateLimited, "rate limit of this token exceeded")
				return
			}
		}
		if !c.allows(scope) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="streamprofile", error="insufficient_scope", scope="`+string(scope)+`"`)
			s.problem(w, http.StatusForbidden, CodeForbidden, "token lacks scope "+string(scope))
			return
		}
		h(w, r)
	}
}

func (s *Server) unauthorized(w http.ResponseWriter, bearerErr, detail string) {
	v := `Bearer realm="streamprofile"`
	if bearerErr != "" {
		v += `, error="` + bearerErr + `"`
	}
	w.Header().Set("WWW-Authenticate", v)
	s.problem(w, http.StatusUnauthorized, CodeUnauthorized, detail)
}

// fallback answers requests no route matched: 405 when the path exists for
// other methods, else 404.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.problem(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed on this resource")
		return
	}
	s.problem(w, http.StatusNotFound, CodeNotFound, "no such resource")
}

// problem writes an error response.
func (s *Server) problem(w http.ResponseWriter, status int, code Code, detail string) {
	p := newProblem(status, code, detail, w.Header().Get("X-Request-Id"))
	b, err := json.Marshal(&p)
	if err != nil { // cannot happen: all fields are strings and ints
		b = []byte(`{"type":"` + ProblemTypePrefix + `internal","title":"Internal Server Error","status":500,"code":"internal"}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// internal logs err and answers 500 without showing it.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, msg string, err error) {
	s.log.Error("api: "+msg, "request_id", w.Header().Get("X-Request-Id"), "route", r.Pattern, "error", err)
	s.problem(w, http.StatusInternalServerError, CodeInternal, "internal error")
}

// writeJSON writes a 2xx JSON response.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.internal(w, r, "encode response", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// errBackendPanic is the error of a backend call that panicked.
var errBackendPanic = errors.New("api: backend panicked")

// call runs fn with a Config.RequestTimeout deadline and returns by the
// deadline even when fn ignores its context (fn then finishes in the
// background and its result is dropped).
func call[T any](s *Server, r *http.Request, fn func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- result{err: fmt.Errorf("%w: %v", errBackendPanic, p)}
			}
		}()
		v, err := fn(ctx)
		ch <- result{v, err}
	}()
	select {
	case res := <-ch:
		return res.v, res.err
	case <-ctx.Done():
		select {
		case res := <-ch: // finished at the deadline: use it
			return res.v, res.err
		default:
		}
		var zero T
		return zero, ctx.Err()
	}
}

// backendError answers a failed backend call.
func (s *Server) backendError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		s.problem(w, http.StatusNotFound, CodeNotFound, what+" not found")
	case errors.Is(err, ErrInvalidCursor):
		s.problem(w, http.StatusBadRequest, CodeBadRequest, "invalid or expired cursor")
	case errors.Is(err, ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		s.log.Warn("api: backend unavailable", "request_id", w.Header().Get("X-Request-Id"), "route", r.Pattern, "error", err)
		s.problem(w, http.StatusServiceUnavailable, CodeUnavailable, "store unavailable, retry later")
	case errors.Is(err, context.DeadlineExceeded) || r.Context().Err() != nil:
		s.log.Warn("api: backend timeout", "request_id", w.Header().Get("X-Request-Id"), "route", r.Pattern, "error", err)
		s.problem(w, http.StatusGatewayTimeout, CodeTimeout, fmt.Sprintf("no answer within %s", s.cfg.RequestTimeout))
	default:
		s.internal(w, r, "backend error", err)
	}
}

// validID: 1 to MaxIDLen bytes of UTF-8 without control characters.
func validID(id string) bool {
	return id != "" && len(id) <= MaxIDLen && printableUTF8(id)
}

func printableUTF8(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// validSegmentName: the catalogue's rule, [a-z0-9_]{1,64}.
func validSegmentName(s string) bool {
	if s == "" || len(s) > MaxSegmentNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// validReceiptID: [A-Za-z0-9._:-]{1,128}.
func validReceiptID(s string) bool {
	if s == "" || len(s) > MaxReceiptLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		s.problem(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("profile id must be 1 to %d bytes of UTF-8 without control characters", MaxIDLen))
		return
	}
	p, err := call(s, r, func(ctx context.Context) (*Profile, error) { return s.b.Profiles.Profile(ctx, id) })
	if err != nil {
		s.backendError(w, r, "profile", err)
		return
	}
	if p == nil {
		s.internal(w, r, "backend returned a nil profile", nil)
		return
	}
	out := *p
	if out.LinkedIDs == nil {
		out.LinkedIDs = []string{}
	}
	if out.Features == nil {
		out.Features = map[string]float64{}
	}
	if out.Affinities == nil {
		out.Affinities = map[string][]Affinity{}
	}
	if out.Segments == nil {
		out.Segments = []SegmentMembership{}
	}
	if out.Scores == nil {
		out.Scores = map[string]Score{}
	}
	s.writeJSON(w, r, http.StatusOK, &out)
}

func (s *Server) listSegments(w http.ResponseWriter, r *http.Request) {
	segs, err := call(s, r, func(ctx context.Context) ([]SegmentInfo, error) { return s.b.Segments.List(ctx) })
	if err != nil {
		s.backendError(w, r, "segments", err)
		return
	}
	if segs == nil {
		segs = []SegmentInfo{}
	}
	s.writeJSON(w, r, http.StatusOK, &SegmentList{Segments: segs})
}

func (s *Server) segmentMembers(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validSegmentName(name) {
		s.problem(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("segment name must be 1 to %d characters of [a-z0-9_]", MaxSegmentNameLen))
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.problem(w, http.StatusBadRequest, CodeBadRequest, "malformed query string")
		return
	}
	cursor := q.Get("cursor")
	if len(cursor) > MaxCursorLen || !printableUTF8(cursor) {
		s.problem(w, http.StatusBadRequest, CodeBadRequest, "invalid cursor")
		return
	}
	limit := s.cfg.DefaultPageSize
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > s.cfg.MaxPageSize {
			s.problem(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("limit must be an integer in [1, %d]", s.cfg.MaxPageSize))
			return
		}
		limit = n
	}
	type page struct {
		ids  []string
		next string
	}
	pg, err := call(s, r, func(ctx context.Context) (page, error) {
		ids, next, err := s.b.Segments.Members(ctx, name, cursor, limit)
		return page{ids, next}, err
	})
	if err != nil {
		s.backendError(w, r, "segment", err)
		return
	}
	if len(pg.ids) > limit {
		s.internal(w, r, "backend returned more members than the limit", fmt.Errorf("%d > %d", len(pg.ids), limit))
		return
	}
	if pg.ids == nil {
		pg.ids = []string{}
	}
	s.writeJSON(w, r, http.StatusOK, &MemberPage{Segment: name, Members: pg.ids, NextCursor: pg.next})
}

func (s *Server) deleteProfile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		s.problem(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("profile id must be 1 to %d bytes of UTF-8 without control characters", MaxIDLen))
		return
	}
	rec, err := call(s, r, func(ctx context.Context) (Receipt, error) { return s.b.Erasures.Erase(ctx, id) })
	if err != nil {
		s.backendError(w, r, "profile", err)
		return
	}
	if !s.checkReceipt(w, r, &rec) {
		return
	}
	w.Header().Set("Location", "/v1/erasures/"+rec.Receipt)
	s.writeJSON(w, r, http.StatusAccepted, &rec)
}

func (s *Server) getErasure(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("receipt")
	if !validReceiptID(id) {
		s.problem(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("receipt must be 1 to %d characters of [A-Za-z0-9._:-]", MaxReceiptLen))
		return
	}
	rec, err := call(s, r, func(ctx context.Context) (Receipt, error) { return s.b.Erasures.Status(ctx, id) })
	if err != nil {
		s.backendError(w, r, "receipt", err)
		return
	}
	if !s.checkReceipt(w, r, &rec) {
		return
	}
	s.writeJSON(w, r, http.StatusOK, &rec)
}

// checkReceipt answers 500 for a receipt that breaks the documented
// contract, rather than send it.
func (s *Server) checkReceipt(w http.ResponseWriter, r *http.Request, rec *Receipt) bool {
	var bad string
	switch {
	case !validReceiptID(rec.Receipt):
		bad = "invalid receipt id"
	case rec.User == "":
		bad = "empty user"
	case !rec.Status.valid():
		bad = fmt.Sprintf("unknown status %q", rec.Status)
	case rec.RequestedAt.IsZero():
		bad = "zero requested_at"
	}
	for _, st := range rec.Steps {
		if bad == "" && (st.Name == "" || !st.Status.valid()) {
			bad = fmt.Sprintf("invalid step %q status %q", st.Name, st.Status)
		}
	}
	if bad != "" {
		s.internal(w, r, "backend returned an invalid receipt", errors.New(bad))
		return false
	}
	if rec.Steps == nil {
		rec.Steps = []ErasureStep{}
	}
	return true
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, &Health{Status: "ok"})
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(s.spec)))
	w.WriteHeader(http.StatusOK)
	w.Write(s.spec)
}
