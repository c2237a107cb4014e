package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/api"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/privacy"
	"github.com/streamprofile/streamprofile/sink/scorer"
	"github.com/streamprofile/streamprofile/sink/segment"
	"github.com/streamprofile/streamprofile/stream"
)

// ServeConfig configures the profile API role. Every field states its
// default.
type ServeConfig struct {
	// API configures the HTTP server (address, tokens, TLS, limits).
	API api.Config
	// Brokers of Kafka, for publishing erasure records. Required.
	Brokers []string
	// Redis says how to reach Redis.
	Redis RedisConfig
	// Store is the Redis layout; Group must be the ingest group's.
	Store features.StoreConfig
	// Features must be the ingesters' feature configuration.
	Features features.Config
	// PseudonymKeyFile must be the ingesters' key file (empty: ids are
	// stored as they are).
	PseudonymKeyFile string
	// Clock evaluates windowed features: "wall" (now) or "stream" (the
	// newest event time the ingesters have seen, for replayed history).
	// Default "wall".
	Clock string
	// ErasureTopic announces erasures. Default "profile-erasures".
	ErasureTopic string
	// ErasureAcks are the roles whose acknowledgement completes an erasure.
	// Default ["scorer", "trainer"].
	ErasureAcks []string
	// Catalogue lists the segments served by GET /v1/segments. Default the
	// built-in catalogue.
	Catalogue *segment.Catalogue
	// Telemetry serves each API request in a server span (HTTPTracing,
	// wrapping API.Middleware) and adds the readiness check "redis" to
	// Telemetry.Admin; run the server inside Telemetry.Admin.Serve.
	// Default: off.
	Telemetry Telemetry
	// Logger for operational logs. Default slog.Default().
	Logger *slog.Logger
}

// Server is the serve role: the profile API over the stores.
type Server struct {
	cfg      ServeConfig
	rdb      redis.UniversalClient
	store    *features.Store
	producer *stream.Producer
	ps       *privacy.Pseudonymizer
	api      *api.Server
	clock    *streamClock
}

// NewServer connects the serve role.
func NewServer(cfg ServeConfig) (*Server, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("serve: no Kafka brokers (needed to announce erasures)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == "" {
		cfg.Clock = "wall"
	}
	if cfg.Clock != "wall" && cfg.Clock != "stream" {
		return nil, fmt.Errorf("serve: clock %q: want wall or stream", cfg.Clock)
	}
	if cfg.ErasureTopic == "" {
		cfg.ErasureTopic = features.ErasureTopic
	}
	if cfg.ErasureAcks == nil {
		cfg.ErasureAcks = []string{"scorer", "trainer"}
	}
	cfg.Features = cfg.Features.WithDefaults()
	if cfg.Catalogue == nil {
		c, err := segment.Default()
		if err != nil {
			return nil, err
		}
		cfg.Catalogue = c
	}
	ps, _, err := Privacy(cfg.PseudonymKeyFile, true)
	if err != nil {
		return nil, err
	}
	rdb := NewRedis(cfg.Redis)
	store, err := features.NewStore(rdb, cfg.Store)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	producer, err := stream.NewProducer(stream.ProducerConfig{Brokers: cfg.Brokers})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	if mw := HTTPTracing(cfg.Telemetry.Tracing); mw != nil {
		if inner := cfg.API.Middleware; inner != nil {
			cfg.API.Middleware = func(h http.Handler) http.Handler { return mw(inner(h)) }
		} else {
			cfg.API.Middleware = mw
		}
	}
	if a := cfg.Telemetry.Admin; a != nil {
		a.AddCheck(RedisReachable("redis", rdb))
	}
	s := &Server{cfg: cfg, rdb: rdb, store: store, producer: producer, ps: ps, clock: &streamClock{store: store}}
	b := Backends(s)
	srv, err := api.New(cfg.API, b)
	if err != nil {
		rdb.Close()
		producer.Close()
		return nil, err
	}
	s.api = srv
	return s, nil
}

// Backends returns the API backends of s.
func Backends(s *Server) api.Backends {
	return api.Backends{Profiles: (*profiles)(s), Segments: (*segments)(s), Erasures: (*erasures)(s)}
}

// API returns the HTTP server.
func (s *Server) API() *api.Server { return s.api }

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("serve: redis: %w", err)
	}
	return s.api.Run(ctx)
}

// Close releases connections.
func (s *Server) Close() error { return errors.Join(s.producer.Close(), s.rdb.Close()) }

// candidates returns the stored ids an API id may stand for.
func (s *Server) candidates(id string) []string {
	if s.ps == nil || !s.ps.Enabled() {
		return []string{id}
	}
	c := s.ps.Candidates(id)
	if _, ok := s.ps.KeyOf(id); ok {
		c = append(c, id) // already a pseudonym
	}
	return c
}

// resolve finds the stored id of the profile id belongs to, following
// identity aliases. ok is false when no profile exists.
func (s *Server) resolve(ctx context.Context, id string) (string, features.State, bool, error) {
	for _, c := range s.candidates(id) {
		target := c
		alias, err := s.rdb.Get(ctx, s.store.AliasKey(c)).Result()
		switch {
		case err == nil:
			target = alias
		case !errors.Is(err, redis.Nil):
			return "", features.State{}, false, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
		}
		st, ok, err := s.store.LoadOne(ctx, target)
		if err != nil {
			if errors.Is(err, features.ErrCorruptState) {
				return "", features.State{}, false, err
			}
			return "", features.State{}, false, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
		}
		if ok && st.MergedInto != "" {
			// An anonymous profile handed over before its alias was
			// written: follow the hand-over.
			target = st.MergedInto
			if st, ok, err = s.store.LoadOne(ctx, target); err != nil {
				return "", features.State{}, false, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
			}
		}
		if ok {
			return target, st, true, nil
		}
	}
	return "", features.State{}, false, nil
}

// streamClock is the newest event time the ingesters have checkpointed.
type streamClock struct {
	store *features.Store
	mu    sync.Mutex
	at    time.Time
	read  time.Time
}

func (c *streamClock) now(ctx context.Context, lateness time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.read) < time.Second {
		return c.at
	}
	var newest int64
	match := c.store.Config().Prefix + ":ckpt:{" + c.store.Config().Group + "}:*"
	_ = scanKeys(ctx, c.store.Client(), match, 100, func(ctx context.Context, cl redis.Cmdable, key string) error {
		if v, err := cl.HGet(ctx, key, "wm").Int64(); err == nil && v > newest {
			newest = v
		}
		return nil
	})
	c.read = time.Now()
	if newest > 0 {
		c.at = time.UnixMilli(newest).Add(lateness).UTC()
	}
	return c.at
}

func (s *Server) evalTime(ctx context.Context) time.Time {
	if s.cfg.Clock == "stream" {
		if t := s.clock.now(ctx, s.cfg.Features.AllowedLateness); !t.IsZero() {
			return t
		}
	}
	return time.Now().UTC()
}

type profiles Server

// Profile implements api.Profiles.
func (p *profiles) Profile(ctx context.Context, id string) (*api.Profile, error) {
	s := (*Server)(p)
	stored, st, ok, err := s.resolve(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.ErrNotFound
	}
	at := s.evalTime(ctx)
	prof := st.Evaluate(at, &s.cfg.Features)
	out := &api.Profile{
		ID: id, LinkedIDs: st.Linked, Features: prof.Vector.Map(),
		Affinities: map[string][]api.Affinity{}, Scores: map[string]api.Score{},
		Consent:     api.Consent{Profiling: !st.ProfilingOff, Ads: !st.AdsOff},
		EvaluatedAt: at,
	}
	if stored != id {
		out.Pseudonym = stored
	}
	if st.ConsentMs > 0 {
		out.Consent.UpdatedAt = time.UnixMilli(st.ConsentMs).UTC()
	}
	for d, list := range prof.Affinities {
		for _, a := range list {
			out.Affinities[d] = append(out.Affinities[d], api.Affinity{Name: a.Name, Score: a.Score})
		}
	}
	raw, err := s.rdb.Get(ctx, s.store.UserKeyPrefix(stored)+"seg").Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	if len(raw) > 0 {
		var m segment.Membership
		if err := m.UnmarshalBinary(raw); err == nil {
			for name, since := range m.All() {
				out.Segments = append(out.Segments, api.SegmentMembership{Name: name, Since: since})
			}
		}
	}
	if sc, err := readScores(ctx, s.rdb, s.store.UserKeyPrefix(stored)+"scores"); err == nil {
		out.Scores = sc
	}
	return out, nil
}

type segments Server

// List implements api.Segments: the catalogue with member counts from the
// scorer's member indexes.
func (g *segments) List(ctx context.Context) ([]api.SegmentInfo, error) {
	s := (*Server)(g)
	infos, err := scorer.Segments(ctx, s.rdb, s.store.Config().Prefix, s.cfg.Catalogue)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	out := make([]api.SegmentInfo, len(infos))
	for i, in := range infos {
		n := in.Members
		out[i] = api.SegmentInfo{Name: in.Name, Description: in.Description, MemberCount: &n}
	}
	return out, nil
}

// Members implements api.Segments with the scorer's SSCAN cursors: pages
// are bounded and nothing loads a whole segment.
func (g *segments) Members(ctx context.Context, name, cursor string, limit int) ([]string, string, error) {
	s := (*Server)(g)
	ids, next, err := scorer.Members(ctx, s.rdb, s.store.Config().Prefix, s.cfg.Catalogue, name, cursor, limit)
	switch {
	case errors.Is(err, scorer.ErrUnknownSegment):
		return nil, "", api.ErrNotFound
	case errors.Is(err, scorer.ErrBadCursor):
		return nil, "", api.ErrInvalidCursor
	case err != nil:
		return nil, "", fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	return ids, next, nil
}

type erasures Server

// Erase implements api.Erasures: it marks the profile (and every id merged
// into it) erased and deletes their keys at once, announces the erasure on
// the compacted profile-erasures topic, and leaves the roles that hold
// derived data (trainer, scorer) to acknowledge on the receipt.
func (x *erasures) Erase(ctx context.Context, id string) (api.Receipt, error) {
	s := (*Server)(x)
	stored, st, ok, err := s.resolve(ctx, id)
	if err != nil {
		return api.Receipt{}, err
	}
	if !ok {
		return api.Receipt{}, api.ErrNotFound
	}
	buf := make([]byte, 12)
	if _, err := rand.Read(buf); err != nil {
		return api.Receipt{}, err
	}
	receipt := "er-" + hex.EncodeToString(buf)
	now := time.Now().UTC()
	key := s.store.ReceiptKey(receipt)
	// The receipt names the user only by a one-way digest.
	if err := s.rdb.HSet(ctx, key, "user", displayID(stored), "requested_at", now.Format(time.RFC3339Nano), "status", string(api.ErasureInProgress)).Err(); err != nil {
		return api.Receipt{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	s.rdb.Expire(ctx, key, s.store.Config().ErasureTTL)
	users := append([]string{stored}, st.Linked...)
	if _, err := s.store.Erase(ctx, users, features.Erasure{At: now.UnixMilli(), Receipt: receipt}); err != nil {
		return api.Receipt{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	s.store.AckErasure(ctx, receipt, "profile_store", time.Now())
	rec := features.ErasureRecord{Receipt: receipt, User: stored, Linked: st.Linked, RequestedAt: now}
	v, err := rec.Encode()
	if err != nil {
		return api.Receipt{}, err
	}
	if err := s.producer.Send(ctx, kafka.Message{Topic: s.cfg.ErasureTopic, Key: []byte(stored), Value: v}); err != nil {
		s.cfg.Logger.Warn("erasure: announcing on profile-erasures failed; the receipt stays in progress", "receipt", receipt, "err", err)
	} else {
		s.store.AckErasure(ctx, receipt, "erasure_topic", time.Now())
	}
	return x.Status(ctx, receipt)
}

// displayID is how a receipt names a stored id: a short one-way digest.
func displayID(stored string) string {
	return "u-" + features.UserDigest(stored)[:16]
}

// Status implements api.Erasures.
func (x *erasures) Status(ctx context.Context, receipt string) (api.Receipt, error) {
	s := (*Server)(x)
	h, err := s.rdb.HGetAll(ctx, s.store.ReceiptKey(receipt)).Result()
	if err != nil {
		return api.Receipt{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	if len(h) == 0 {
		return api.Receipt{}, api.ErrNotFound
	}
	r := api.Receipt{Receipt: receipt, User: h["user"], Status: api.ErasureInProgress}
	r.RequestedAt, _ = time.Parse(time.RFC3339Nano, h["requested_at"])
	steps := append([]string{"profile_store", "erasure_topic"}, s.cfg.ErasureAcks...)
	done := true
	var last time.Time
	for _, name := range steps {
		step := api.ErasureStep{Name: name, Status: api.StepPending}
		if v, ok := h["step:"+name]; ok {
			step.Status = api.StepCompleted
			step.At, _ = time.Parse(time.RFC3339Nano, v)
			if step.At.After(last) {
				last = step.At
			}
		} else {
			done = false
		}
		r.Steps = append(r.Steps, step)
	}
	if done {
		r.Status, r.CompletedAt = api.ErasureCompleted, last
		if h["status"] != string(api.ErasureCompleted) {
			s.rdb.HSet(ctx, s.store.ReceiptKey(receipt), "status", string(api.ErasureCompleted))
		}
	}
	return r, nil
}

// readScores reads the latest scores the scorer stored for a user: a hash
// of task → "value|model_version|feature:contribution,…".
func readScores(ctx context.Context, rdb redis.UniversalClient, key string) (map[string]api.Score, error) {
	h, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]api.Score{}
	for task, v := range h {
		parts := strings.SplitN(v, "|", 3)
		f, err := strconv.ParseFloat(parts[0], 64)
		if err != nil {
			continue
		}
		sc := api.Score{Value: f}
		if len(parts) > 1 {
			sc.ModelVersion = parts[1]
		}
		if len(parts) > 2 && parts[2] != "" {
			for _, c := range strings.Split(parts[2], ",") {
				name, val, ok := strings.Cut(c, ":")
				if n, err := strconv.ParseFloat(val, 64); ok && err == nil {
					sc.Explanation = append(sc.Explanation, api.Contribution{Feature: name, Contribution: n})
				}
			}
		}
		out[task] = sc
	}
	return out, nil
}
