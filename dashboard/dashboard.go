package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/streamprofile/streamprofile/api"
	"github.com/streamprofile/streamprofile/internal/httpserve"
)

//go:embed static
var static embed.FS

// Config configures the dashboard. Every field states its default.
type Config struct {
	// Addr is the listen address of Run. Default "localhost:8080".
	Addr string
	// Source feeds the numbers. Required.
	Source Source
	// Profiles answers the profile lookup (the profile API's backend, so
	// any id linked to a profile, or its pseudonym, finds it). Default nil:
	// /api/profile answers 503.
	Profiles api.Profiles
	// Sample is how often the Source is read. Default 1s.
	Sample time.Duration
	// Window is how many samples rates and latency quantiles span.
	// Default 5.
	Window int
	// History is how many samples the charts show. Default 300.
	History int
	// Recent bounds the segment changes and the triggers kept (each).
	// Default 50.
	Recent int
	// Title heads the page. Default "streamprofile".
	Title string
	// Logger receives lookup and server errors. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = "localhost:8080"
	}
	if c.Sample <= 0 {
		c.Sample = time.Second
	}
	if c.Window <= 0 {
		c.Window = 5
	}
	if c.History <= 0 {
		c.History = 300
	}
	if c.Recent <= 0 {
		c.Recent = 50
	}
	if c.Title == "" {
		c.Title = "streamprofile"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ErrNoSource is returned by New without a Source.
var ErrNoSource = errors.New("dashboard: Config.Source is required")

// Server is the dashboard: it samples the Source and serves the page and
// its API. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	start   time.Time
	handler http.Handler

	mu       sync.Mutex
	samples  []sample // the last Window+1 readings, oldest first
	history  ring[Point]
	changes  ring[Change]
	triggers ring[Trigger]
	last     Pipeline
	learning Learning
	segments []Segment
	bound    string
}

// sample is one reading of the Source.
type sample struct {
	at       time.Time
	consumed int64
	latency  Histogram
}

// Point is one sample of the charts.
type Point struct {
	// T is the sample time, Unix milliseconds.
	T int64 `json:"t"`
	// EPS is events consumed per second over the window.
	EPS float64 `json:"eps"`
	// Lag is the pipeline's lag (-1 unknown).
	Lag int64 `json:"lag"`
	// P50 and P99 are latency quantiles in milliseconds over the window;
	// absent when nothing was observed.
	P50 *float64 `json:"p50_ms,omitempty"`
	P99 *float64 `json:"p99_ms,omitempty"`
}

// Stats is the body of /api/stats.
type Stats struct {
	Title         string    `json:"title"`
	Time          time.Time `json:"time"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	// Now is the newest sample (rates, lag and latency quantiles).
	Now      Point     `json:"now"`
	Pipeline Pipeline  `json:"pipeline"`
	History  []Point   `json:"history"`
	Learning Learning  `json:"learning"`
	Segments []Segment `json:"segments"`
	// Changes and Triggers are the newest first.
	Changes  []Change  `json:"changes"`
	Triggers []Trigger `json:"triggers"`
}

// New returns the dashboard of cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Source == nil {
		return nil, ErrNoSource
	}
	cfg = cfg.WithDefaults()
	s := &Server{cfg: cfg, start: cfg.Now(),
		history: newRing[Point](cfg.History), changes: newRing[Change](cfg.Recent), triggers: newRing[Trigger](cfg.Recent)}
	s.handler = s.routes()
	return s, nil
}

// RecordChange adds a segment membership change to the page's list (the
// oldest is dropped beyond Config.Recent).
func (s *Server) RecordChange(c Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes.add(c)
}

// RecordTrigger adds an emitted trigger to the page's list (the oldest is
// dropped beyond Config.Recent).
func (s *Server) RecordTrigger(t Trigger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.triggers.add(t)
}

// Sample reads the Source once and updates the rates, quantiles and
// history. Run calls it every Config.Sample.
func (s *Server) Sample() {
	p := s.cfg.Source.Pipeline()
	l := s.cfg.Source.Learning()
	segs := s.cfg.Source.Segments()
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, sample{at: now, consumed: p.Consumed, latency: p.Latency})
	if len(s.samples) > s.cfg.Window+1 {
		s.samples = append(s.samples[:0], s.samples[len(s.samples)-s.cfg.Window-1:]...)
	}
	first, last := s.samples[0], s.samples[len(s.samples)-1]
	pt := Point{T: now.UnixMilli(), Lag: p.Lag}
	if dt := last.at.Sub(first.at).Seconds(); dt > 0 {
		pt.EPS = math.Max(0, float64(last.consumed-first.consumed)/dt)
	}
	window := last.latency.since(first.latency)
	if len(s.samples) == 1 {
		window = last.latency
	}
	if v, ok := window.Quantile(0.5); ok {
		pt.P50 = ptr(v * 1000)
	}
	if v, ok := window.Quantile(0.99); ok {
		pt.P99 = ptr(v * 1000)
	}
	s.history.add(pt)
	s.last = p
	s.learning = cleanLearning(l)
	s.segments = segs
}

func ptr(v float64) *float64 { return &v }

// cleanLearning drops the AUCs JSON cannot carry (NaN, ±Inf).
func cleanLearning(l Learning) Learning {
	curve := make([]CurvePoint, len(l.Curve))
	for i, p := range l.Curve {
		auc := make(map[string]float64, len(p.AUC))
		for m, v := range p.AUC {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				auc[m] = v
			}
		}
		curve[i] = CurvePoint{Evaluated: p.Evaluated, EventTime: p.EventTime, AUC: auc}
	}
	l.Curve = curve
	return l
}

// Stats returns what /api/stats serves.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	st := Stats{
		Title: s.cfg.Title, Time: now, UptimeSeconds: now.Sub(s.start).Seconds(),
		Pipeline: s.last, History: s.history.oldestFirst(), Learning: s.learning,
		Segments: append([]Segment{}, s.segments...),
		Changes:  s.changes.newestFirst(), Triggers: s.triggers.newestFirst(),
	}
	if n := len(st.History); n > 0 {
		st.Now = st.History[n-1]
	} else {
		st.Now.Lag = -1
	}
	if st.Learning.Curve == nil {
		st.Learning.Curve = []CurvePoint{}
	}
	return st
}

// Handler returns the dashboard's routes.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr returns the address Run or Serve listens on ("" before).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// Run listens on Config.Addr and serves (sampling the Source) until ctx is
// done, then shuts down gracefully and returns nil.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened; it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	s.bound = ln.Addr().String()
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(s.cfg.Sample)
		defer tick.Stop()
		s.Sample()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.Sample()
			}
		}
	}()
	err := httpserve.Serve(ctx, srv, func() error { return srv.Serve(ln) }, 5*time.Second)
	<-done
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}

// MaxIDLen bounds the id of a profile lookup, in bytes.
const MaxIDLen = 256

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	assets, err := fs.Sub(static, "static")
	if err != nil { // cannot happen: the directory is embedded
		panic(err)
	}
	files := http.FileServerFS(assets)
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, assets, "index.html")
	})
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /api/profile", s.profile)
	return secure(mux)
}

// secure adds the headers every response carries.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// problem is the body of an error answer.
type problem struct {
	Error string `json:"error"`
}

func (s *Server) profile(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	switch {
	case id == "":
		writeJSON(w, http.StatusBadRequest, problem{"give the profile's id: /api/profile?id=..."})
		return
	case len(id) > MaxIDLen || !utf8.ValidString(id):
		writeJSON(w, http.StatusBadRequest, problem{fmt.Sprintf("an id is 1 to %d bytes of UTF-8", MaxIDLen)})
		return
	case s.cfg.Profiles == nil:
		writeJSON(w, http.StatusServiceUnavailable, problem{"no profile store configured"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	p, err := s.cfg.Profiles.Profile(ctx, id)
	switch {
	case errors.Is(err, api.ErrNotFound):
		writeJSON(w, http.StatusNotFound, problem{"no profile for this id"})
	case err != nil:
		s.cfg.Logger.Warn("dashboard: profile lookup failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, problem{"the profile store did not answer"})
	default:
		writeJSON(w, http.StatusOK, p)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b)
	_, _ = io.WriteString(w, "\n")
}

// since returns the observations of h made after prev (an earlier reading
// of the same histogram); h itself when the bounds differ or the counts went
// back (a restart).
func (h Histogram) since(prev Histogram) Histogram {
	if len(h.Bounds) != len(prev.Bounds) || h.Count < prev.Count {
		return h
	}
	d := Histogram{Bounds: h.Bounds, Counts: make([]uint64, len(h.Counts)), Count: h.Count - prev.Count}
	for i := range h.Counts {
		if h.Bounds[i] != prev.Bounds[i] || h.Counts[i] < prev.Counts[i] {
			return h
		}
		d.Counts[i] = h.Counts[i] - prev.Counts[i]
	}
	return d
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) of h as Prometheus'
// histogram_quantile does: linear interpolation within the bucket holding
// the rank, the first bucket starting at 0, and the largest finite bound
// for a rank in the +Inf bucket. ok is false for an empty histogram.
func (h Histogram) Quantile(q float64) (v float64, ok bool) {
	if h.Count == 0 || len(h.Bounds) == 0 || len(h.Counts) != len(h.Bounds) || q < 0 || q > 1 {
		return 0, false
	}
	rank := q * float64(h.Count)
	var below uint64
	lower := 0.0
	for i, c := range h.Counts {
		if float64(c) >= rank && c > below {
			return lower + (h.Bounds[i]-lower)*(rank-float64(below))/float64(c-below), true
		}
		below, lower = c, h.Bounds[i]
	}
	return h.Bounds[len(h.Bounds)-1], true
}
