package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/inputs"
	"github.com/streamprofile/streamprofile/model/nn"
)

// Served is an immutable champion snapshot: a version, its weights and the
// input encoder of its architecture, bound to the version's BG/NBD fit
// (Version.CLV) for the derived inputs. Scorers load one per request from a
// Champion holder and use it for the whole request, so a swap never mixes
// two versions within one score.
type Served struct {
	Version Version
	Model   *nn.Model
	Encoder *inputs.Encoder
}

// NewServed builds the served form of version v with weights m, checking
// that the weights' architecture has v's schema hash. Its encoder computes
// the derived inputs (inputs.DerivedInputs) with v.CLV, the fit the
// trainer had when it cut v.
func NewServed(v Version, m *nn.Model) (*Served, error) {
	enc, err := inputs.New(m.Arch())
	if err != nil {
		return nil, err
	}
	if v.SchemaHash != "" && enc.SchemaHash() != v.SchemaHash {
		return nil, fmt.Errorf("%w: version %d says %s, its weights have %s", ErrSchema, v.Number, v.SchemaHash, enc.SchemaHash())
	}
	return &Served{Version: v, Model: m, Encoder: enc.WithFit(v.CLV.Fit())}, nil
}

// Score is one scored snapshot, stamped with the model version.
type Score struct {
	// Version is the model version that produced Probs.
	Version int64 `json:"model_version"`
	// Heads names Probs' entries.
	Heads []string `json:"heads"`
	// Probs holds one probability per head.
	Probs []float64 `json:"probs"`
}

// Score scores one snapshot.
func (s *Served) Score(snap *features.Snapshot) (Score, error) {
	p, err := s.Model.Predict(s.Encoder.Encode(snap))
	if err != nil {
		return Score{}, err
	}
	return Score{Version: s.Version.Number, Heads: s.Encoder.Arch().Heads, Probs: p}, nil
}

// Champion holds the current champion for lock-free reads. The zero value
// holds nothing.
type Champion struct {
	p atomic.Pointer[Served]
}

// Load returns the current champion, or nil when none is loaded.
func (c *Champion) Load() *Served { return c.p.Load() }

// Store publishes s (atomically; readers see the old or the new one).
func (c *Champion) Store(s *Served) { c.p.Store(s) }

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Registry to follow. Required.
	Registry *Registry
	// Holder receives the champion. Default a new Champion (see
	// Watcher.Champion).
	Holder *Champion
	// Interval between polls of the registry's meta record (one small
	// read). Default 1s.
	Interval time.Duration
	// SchemaHash, when set, is required of every champion: a champion with
	// another schema is not loaded (the previous one stays served) and the
	// mismatch is logged. Default "" (any schema).
	SchemaHash string
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// OnSwap, when set, is called after each swap with the new champion.
	OnSwap func(*Served)
}

// Watcher keeps a Champion holder up to date with the registry's champion
// by polling, so scorers pick up promotions and rollbacks without a
// restart.
type Watcher struct {
	cfg    WatcherConfig
	holder *Champion
	swaps  atomic.Int64
	kick   chan struct{}
}

// NewWatcher returns a watcher; call Run (or Refresh) to load.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Registry == nil {
		return nil, fmt.Errorf("%w: watcher needs a registry", ErrInvalidConfig)
	}
	if cfg.Holder == nil {
		cfg.Holder = &Champion{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Watcher{cfg: cfg, holder: cfg.Holder, kick: make(chan struct{}, 1)}, nil
}

// Champion returns the holder the watcher updates.
func (w *Watcher) Champion() *Champion { return w.holder }

// Swaps returns how many champions the watcher has loaded.
func (w *Watcher) Swaps() int64 { return w.swaps.Load() }

// Notify asks Run to poll now (for example when a model-versions message
// arrives). It never blocks.
func (w *Watcher) Notify() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Refresh loads the registry's champion if it differs from the held one
// (by version number and status). It returns ErrNoChampion when the
// registry has none; the holder then keeps what it has.
func (w *Watcher) Refresh(ctx context.Context) error {
	meta, err := w.cfg.Registry.Meta(ctx)
	if err != nil {
		return err
	}
	if meta.Champion == 0 {
		return ErrNoChampion
	}
	if cur := w.holder.Load(); cur != nil && cur.Version.Number == meta.Champion {
		return nil
	}
	v, m, err := w.cfg.Registry.Champion(ctx)
	if err != nil {
		return err
	}
	s, err := NewServed(v, m)
	if err != nil {
		return err
	}
	if w.cfg.SchemaHash != "" && s.Encoder.SchemaHash() != w.cfg.SchemaHash {
		return fmt.Errorf("%w: champion %d has schema %s, want %s", ErrSchema, v.Number, s.Encoder.SchemaHash(), w.cfg.SchemaHash)
	}
	w.holder.Store(s)
	w.swaps.Add(1)
	if w.cfg.OnSwap != nil {
		w.cfg.OnSwap(s)
	}
	return nil
}

// Run polls until ctx is done. Errors other than ErrNoChampion are logged
// and retried at the next poll; Run returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		if err := w.Refresh(ctx); err != nil && !errors.Is(err, ErrNoChampion) && ctx.Err() == nil {
			w.cfg.Logger.Warn("champion refresh failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.kick:
		}
	}
}
