package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
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
	// ErasureRetries is how many times an erasure announcement that could
	// not be sent is retried in the background (after 1s, then doubling
	// waits). Default 6 (about a minute); negative: none. A repeated
	// DELETE of the profile sends it again in any case.
	ErasureRetries int
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

	// bg bounds the background retries of erasure announcements; Close
	// cancels it and waits for them.
	bgMu     sync.Mutex // orders starting a retry before Close's wait
	bg       context.Context
	stopBG   context.CancelFunc
	retries  sync.WaitGroup
	retrying sync.Map // receipt → struct{}: a background retry is running
}

// NewServer connects the serve role.
func NewServer(cfg ServeConfig) (*Server, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("serve: no Kafka brokers (needed to announce erasures)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.API.Logger == nil {
		// The API logs 5xx errors and token reloads; its own default
		// discards them.
		cfg.API.Logger = cfg.Logger
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
	if cfg.ErasureRetries == 0 {
		cfg.ErasureRetries = 6
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
	s.bg, s.stopBG = context.WithCancel(context.Background())
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

// Close stops the background retries of erasure announcements and releases
// connections.
func (s *Server) Close() error {
	s.bgMu.Lock()
	s.stopBG()
	s.bgMu.Unlock()
	s.retries.Wait()
	return errors.Join(s.producer.Close(), s.rdb.Close())
}

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
// identity aliases: the first candidate (current key first) that resolves.
// ok is false when no profile exists.
func (s *Server) resolve(ctx context.Context, id string) (string, features.State, bool, error) {
	for _, c := range s.candidates(id) {
		r, ok, err := s.resolveCandidate(ctx, c)
		if err != nil || ok {
			return r.stored, r.st, ok, err
		}
	}
	return "", features.State{}, false, nil
}

// resolved is a stored profile a candidate id leads to.
type resolved struct {
	cand   string // the candidate looked up
	stored string // the profile's stored id
	st     features.State
}

// resolveAll returns every distinct profile the candidates of id lead to:
// during a key rotation a user can have a profile under the current key
// and another under an older one.
func (s *Server) resolveAll(ctx context.Context, id string) ([]resolved, error) {
	var out []resolved
	for _, c := range s.candidates(id) {
		r, ok, err := s.resolveCandidate(ctx, c)
		if err != nil {
			return nil, err
		}
		if ok && !slices.ContainsFunc(out, func(o resolved) bool { return o.stored == r.stored }) {
			out = append(out, r)
		}
	}
	return out, nil
}

// resolveCandidate finds the profile the stored id c belongs to.
func (s *Server) resolveCandidate(ctx context.Context, c string) (resolved, bool, error) {
	target := c
	alias, err := s.rdb.Get(ctx, s.store.AliasKey(c)).Result()
	switch {
	case err == nil:
		target = alias
	case !errors.Is(err, redis.Nil):
		return resolved{}, false, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	st, ok, err := s.store.LoadOne(ctx, target)
	if err != nil {
		if errors.Is(err, features.ErrCorruptState) {
			return resolved{}, false, err
		}
		return resolved{}, false, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	if ok && st.MergedInto != "" {
		// An anonymous profile handed over before its alias was
		// written: follow the hand-over.
		target = st.MergedInto
		if st, ok, err = s.store.LoadOne(ctx, target); err != nil {
			return resolved{}, false, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
		}
	}
	if !ok {
		return resolved{}, false, nil
	}
	return resolved{cand: c, stored: target, st: st}, true, nil
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

// Erase implements api.Erasures: it marks every profile the id leads to
// (during a key rotation, one per key under which the user has data) and
// every id merged into them erased and deletes their keys at once,
// announces the erasure on the compacted profile-erasures topic, and leaves
// the roles that hold derived data (trainer, scorer) to acknowledge on the
// receipt. An id whose profile is already erased gets that erasure's
// receipt back while it is kept, and an announcement that did not go out
// is sent again.
func (x *erasures) Erase(ctx context.Context, id string) (api.Receipt, error) {
	s := (*Server)(x)
	found, err := s.resolveAll(ctx, id)
	if err != nil {
		return api.Receipt{}, err
	}
	if len(found) == 0 {
		return x.again(ctx, id)
	}
	var users []string
	add := func(u string) {
		if u != "" && !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	for _, r := range found {
		add(r.stored)
	}
	for _, r := range found {
		for _, l := range r.st.Linked {
			add(l)
		}
		add(r.cand) // an anonymous id aliased to the profile
	}
	buf := make([]byte, 12)
	if _, err := rand.Read(buf); err != nil {
		return api.Receipt{}, err
	}
	receipt := "er-" + hex.EncodeToString(buf)
	now := time.Now().UTC()
	rec := features.ErasureRecord{Receipt: receipt, User: users[0], Linked: users[1:], RequestedAt: now}
	v, err := rec.Encode()
	if err != nil {
		return api.Receipt{}, err
	}
	key, ttl := s.store.ReceiptKey(receipt), s.store.Config().ErasureTTL
	// The receipt names the user only by a one-way digest. The
	// announcement (which carries the stored ids, as the roles need them)
	// waits beside it until it has been sent, so that a failed or
	// interrupted send can be repeated.
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "user", displayID(users[0]), "requested_at", now.Format(time.RFC3339Nano), "status", string(api.ErasureInProgress))
		p.PExpire(ctx, key, ttl)
		p.Set(ctx, s.announceKey(receipt), v, ttl)
		return nil
	})
	if err != nil {
		return api.Receipt{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	if _, err := s.store.Erase(ctx, users, features.Erasure{At: now.UnixMilli(), Receipt: receipt}); err != nil {
		return api.Receipt{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	s.store.AckErasure(ctx, receipt, "profile_store", time.Now())
	if err := s.announce(ctx, receipt, []byte(users[0]), v); err != nil {
		s.retryAnnounce(receipt)
	}
	return x.Status(ctx, receipt)
}

// again answers an erasure request for an id with no profile: the receipt
// of the newest erasure marker of its candidates, if that receipt is still
// kept (else ErrNotFound), after sending its announcement again if it has
// not gone out.
func (x *erasures) again(ctx context.Context, id string) (api.Receipt, error) {
	s := (*Server)(x)
	var receipt string
	var newest int64 = -1
	for _, c := range s.candidates(id) {
		v, err := s.rdb.Get(ctx, s.store.ErasedKey(c)).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return api.Receipt{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
		}
		at, r, ok := strings.Cut(v, ":")
		n, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || r == "" {
			continue
		}
		if n > newest {
			if exists, err := s.rdb.Exists(ctx, s.store.ReceiptKey(r)).Result(); err != nil {
				return api.Receipt{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
			} else if exists == 1 {
				receipt, newest = r, n
			}
		}
	}
	if receipt == "" {
		return api.Receipt{}, api.ErrNotFound
	}
	sent, err := s.rdb.HExists(ctx, s.store.ReceiptKey(receipt), "step:"+stepAnnounce).Result()
	if err != nil {
		return api.Receipt{}, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	if !sent {
		if err := s.resend(ctx, receipt); err != nil {
			s.retryAnnounce(receipt)
		}
	}
	return x.Status(ctx, receipt)
}

// stepAnnounce is the receipt step of the erasure announcement.
const stepAnnounce = "erasure_topic"

// announceKey holds a receipt's erasure announcement until it is sent (in
// the receipt's slot).
func (s *Server) announceKey(receipt string) string { return s.store.ReceiptKey(receipt) + ":announce" }

// resend sends the announcement of receipt kept by Erase, if it is still
// waiting (nil when there is none to send).
func (s *Server) resend(ctx context.Context, receipt string) error {
	v, err := s.rdb.Get(ctx, s.announceKey(receipt)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil // sent meanwhile, or from before announcements were kept
	}
	if err != nil {
		return err
	}
	rec, err := features.DecodeErasure(v)
	if err != nil {
		s.cfg.Logger.Warn("erasure: the kept announcement does not decode; not sent", "receipt", receipt, "err", err)
		return nil
	}
	return s.announce(ctx, receipt, []byte(rec.User), v)
}

// announce sends an erasure record keyed by the user and records the
// outcome on the receipt: the step completed (and the kept announcement
// deleted) or failed at this time. The send gets at most half of what is
// left of ctx, so that the request can still answer.
func (s *Server) announce(ctx context.Context, receipt string, key, value []byte) error {
	budget := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)/2)
	}
	sctx, cancel := context.WithTimeout(ctx, budget)
	err := s.producer.Send(sctx, kafka.Message{Topic: s.cfg.ErasureTopic, Key: key, Value: value})
	cancel()
	// The outcome is recorded even when the request has ended meanwhile.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rkey := s.store.ReceiptKey(receipt)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if err != nil {
		s.cfg.Logger.Warn("erasure: announcing on profile-erasures failed; a repeated DELETE or the background retry sends it again",
			"receipt", receipt, "err", err)
		if n, xerr := s.rdb.Exists(bctx, rkey).Result(); xerr == nil && n == 1 {
			s.rdb.HSet(bctx, rkey, "fail:"+stepAnnounce, now)
		}
		return err
	}
	if n, xerr := s.rdb.Exists(bctx, rkey).Result(); xerr == nil && n == 1 {
		_, xerr = s.rdb.TxPipelined(bctx, func(p redis.Pipeliner) error {
			p.HSet(bctx, rkey, "step:"+stepAnnounce, now)
			p.HDel(bctx, rkey, "fail:"+stepAnnounce)
			p.Del(bctx, s.announceKey(receipt))
			return nil
		})
		if xerr != nil {
			s.cfg.Logger.Warn("erasure: announced, but recording it on the receipt failed", "receipt", receipt, "err", xerr)
		}
	} else {
		s.rdb.Del(bctx, s.announceKey(receipt))
	}
	return nil
}

// retryAnnounce retries a receipt's announcement in the background,
// ErasureRetries times at most, until the server closes.
func (s *Server) retryAnnounce(receipt string) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.cfg.ErasureRetries <= 0 || s.bg.Err() != nil {
		return
	}
	if _, running := s.retrying.LoadOrStore(receipt, struct{}{}); running {
		return
	}
	s.retries.Add(1)
	go func() {
		defer s.retries.Done()
		defer s.retrying.Delete(receipt)
		wait := time.Second
		for range s.cfg.ErasureRetries {
			select {
			case <-s.bg.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
			ctx, cancel := context.WithTimeout(s.bg, 10*time.Second)
			err := s.resend(ctx, receipt)
			cancel()
			if err == nil {
				return
			}
		}
		s.cfg.Logger.Warn("erasure: announcement still not sent after the retries; a repeated DELETE of the profile sends it", "receipt", receipt)
	}()
}

// displayID is how a receipt names a stored id: a short one-way digest.
func displayID(stored string) string {
	return "u-" + features.UserDigest(stored)[:16]
}

// Status implements api.Erasures. A step that failed and has not completed
// since is reported failed, at the time of its last failure; the receipt
// stays in progress, since the step is retried.
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
	steps := append([]string{"profile_store", stepAnnounce}, s.cfg.ErasureAcks...)
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
			if v, ok := h["fail:"+name]; ok {
				step.Status = api.StepFailed
				step.At, _ = time.Parse(time.RFC3339Nano, v)
			}
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
