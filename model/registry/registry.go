package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamprofile/streamprofile/model/nn"
)

// DefaultTopic is the compacted topic versions are announced on.
const DefaultTopic = "model-versions"

// Sender publishes messages (stream.Producer implements it).
type Sender interface {
	Send(ctx context.Context, msgs ...kafka.Message) error
}

// Config configures a Registry.
type Config struct {
	// Backend stores the versions. Required.
	Backend Backend
	// Announce, when set, receives every created or changed version on
	// Topic (key = version number in decimal, value = the version's JSON,
	// without weights). Announcing is best effort: the backend is the
	// source of truth and a failed announcement is logged, not returned.
	// Default none.
	Announce Sender
	// Topic for announcements. Default "model-versions".
	Topic string
	// Logger for announcement failures. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for CreatedAt and notes. Default time.Now.
	Now func() time.Time
}

// Registry is the model registry: versions, their weights and trainer
// states, the champion and the promotion history. It is safe for
// concurrent use, and several processes may use one backend at once.
type Registry struct {
	cfg Config
}

// New returns a registry over cfg.Backend.
func New(cfg Config) (*Registry, error) {
	if cfg.Backend == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrInvalidConfig)
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Registry{cfg: cfg}, nil
}

// Backend returns the registry's backend.
func (r *Registry) Backend() Backend { return r.cfg.Backend }

// Create stores m as a new candidate version described by v (Number,
// Status, CreatedAt and ModelBytes are set here) with the trainer state
// (may be nil), and returns it.
func (r *Registry) Create(ctx context.Context, v Version, m *nn.Model, state []byte) (Version, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return Version{}, err
	}
	v.Status = StatusCandidate
	if v.CreatedAt.IsZero() {
		v.CreatedAt = r.cfg.Now().UTC()
	}
	n, err := r.cfg.Backend.Create(ctx, v, b, state)
	if err != nil {
		return Version{}, err
	}
	v.Number, v.ModelBytes = n, len(b)
	r.announce(ctx, v)
	return v, nil
}

// Get returns version n.
func (r *Registry) Get(ctx context.Context, n int64) (Version, error) {
	return r.cfg.Backend.Get(ctx, n)
}

// List returns every version in number order.
func (r *Registry) List(ctx context.Context) ([]Version, error) { return r.cfg.Backend.List(ctx) }

// Meta returns the registry-wide record.
func (r *Registry) Meta(ctx context.Context) (Meta, error) { return r.cfg.Backend.Meta(ctx) }

// Model loads version n's weights.
func (r *Registry) Model(ctx context.Context, n int64) (*nn.Model, error) {
	b, err := r.cfg.Backend.Model(ctx, n)
	if err != nil {
		return nil, err
	}
	m, err := nn.Load(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: version %d weights: %v", ErrCorrupt, n, err)
	}
	return m, nil
}

// State returns the trainer state stored with version n (nil if none).
func (r *Registry) State(ctx context.Context, n int64) ([]byte, error) {
	return r.cfg.Backend.State(ctx, n)
}

// PruneStates passes the trainer state of every version numbered below
// `below` that it has not passed before to prune, and stores what prune
// returns in its place (nil removes the state; the same bytes leave it as
// it is). The latest version is never passed: a restarting trainer resumes
// from its state. Meta.StatesPrunedBelow records how far pruning got, so
// calling PruneStates after each Create reads one state. It returns how
// many states changed.
func (r *Registry) PruneStates(ctx context.Context, below int64, prune func(n int64, state []byte) ([]byte, error)) (int, error) {
	meta, err := r.Meta(ctx)
	if err != nil {
		return 0, err
	}
	below = min(below, meta.Latest)
	changed := 0
	for n := max(meta.StatesPrunedBelow, 1); n < below; n++ {
		done := func(m *Meta) { m.StatesPrunedBelow = max(m.StatesPrunedBelow, n+1) }
		state, err := r.cfg.Backend.State(ctx, n)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return changed, err
		}
		if err == nil && state != nil {
			out, err := prune(n, state)
			if err != nil {
				return changed, fmt.Errorf("registry: pruning version %d's state: %w", n, err)
			}
			if !bytes.Equal(out, state) || out == nil {
				if err := r.cfg.Backend.SetState(ctx, n, out, done); err != nil {
					return changed, err
				}
				changed++
				continue
			}
		}
		if err := r.cfg.Backend.Update(ctx, func(tx Tx) error { done(tx.Meta()); return nil }); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// Champion returns the champion version and its weights (ErrNoChampion).
func (r *Registry) Champion(ctx context.Context) (Version, *nn.Model, error) {
	meta, err := r.Meta(ctx)
	if err != nil {
		return Version{}, nil, err
	}
	if meta.Champion == 0 {
		return Version{}, nil, ErrNoChampion
	}
	v, err := r.Get(ctx, meta.Champion)
	if err != nil {
		return Version{}, nil, err
	}
	m, err := r.Model(ctx, v.Number)
	if err != nil {
		return Version{}, nil, err
	}
	return v, m, nil
}

func (r *Registry) note(v *Version, text string) {
	if text != "" {
		v.Notes = append(v.Notes, Note{At: r.cfg.Now().UTC(), Text: text})
	}
}

// Promote makes version n the champion; the previous champion is retired.
// A rolled-back version may be promoted again explicitly. Promoting the
// champion is an ErrTransition.
func (r *Registry) Promote(ctx context.Context, n int64, note string) (Version, error) {
	var out []Version
	err := r.cfg.Backend.Update(ctx, func(tx Tx) error {
		out = out[:0]
		meta := tx.Meta()
		v, err := tx.Version(n)
		if err != nil {
			return err
		}
		if v.Status == StatusChampion || meta.Champion == n {
			return fmt.Errorf("%w: version %d is already champion", ErrTransition, n)
		}
		if meta.Champion != 0 {
			old, err := tx.Version(meta.Champion)
			if err != nil {
				return err
			}
			old.Status = StatusRetired
			r.note(old, fmt.Sprintf("retired: version %d promoted", n))
			out = append(out, *old)
		}
		v.Status = StatusChampion
		r.note(v, "promoted: "+note)
		meta.Champion = n
		meta.History = append(meta.History, n)
		out = append(out, *v)
		return nil
	})
	if err != nil {
		return Version{}, err
	}
	r.announce(ctx, out...)
	return out[len(out)-1], nil
}

// Rollback marks the champion rolled_back and restores the most recent
// earlier champion (in the promotion history) that was not rolled back.
// It returns the restored version; ErrNoChampion when there is no
// champion, ErrNoPrevious when no earlier good champion exists.
func (r *Registry) Rollback(ctx context.Context, note string) (Version, error) {
	return r.rollback(ctx, 0, note)
}

// RollbackFrom is Rollback only if version n is still the champion: a
// monitor that judged n bad must not roll back a newer champion. It
// returns ErrTransition when n is not the champion.
func (r *Registry) RollbackFrom(ctx context.Context, n int64, note string) (Version, error) {
	return r.rollback(ctx, n, note)
}

func (r *Registry) rollback(ctx context.Context, from int64, note string) (Version, error) {
	var out []Version
	err := r.cfg.Backend.Update(ctx, func(tx Tx) error {
		out = out[:0]
		meta := tx.Meta()
		if meta.Champion == 0 {
			return ErrNoChampion
		}
		if from != 0 && meta.Champion != from {
			return fmt.Errorf("%w: version %d is no longer champion (%d is)", ErrTransition, from, meta.Champion)
		}
		bad, err := tx.Version(meta.Champion)
		if err != nil {
			return err
		}
		var target *Version
		for i := len(meta.History) - 1; i >= 0; i-- {
			h := meta.History[i]
			if h == bad.Number {
				continue
			}
			v, err := tx.Version(h)
			if err != nil {
				return err
			}
			if v.Status != StatusRolledBack {
				target = v
				break
			}
		}
		if target == nil {
			return ErrNoPrevious
		}
		bad.Status = StatusRolledBack
		r.note(bad, fmt.Sprintf("rolled back to version %d: %s", target.Number, note))
		target.Status = StatusChampion
		r.note(target, fmt.Sprintf("restored by rollback of version %d", bad.Number))
		meta.Champion = target.Number
		meta.History = append(meta.History, target.Number)
		out = append(out, *bad, *target)
		return nil
	})
	if err != nil {
		return Version{}, err
	}
	r.announce(ctx, out...)
	return out[1], nil
}

// Retire marks a candidate retired (for example rejected by the gate).
// Retiring the champion is an ErrTransition (roll back or promote another
// instead).
func (r *Registry) Retire(ctx context.Context, n int64, note string) (Version, error) {
	return r.Amend(ctx, n, func(v *Version) error {
		if v.Status == StatusChampion {
			return fmt.Errorf("%w: version %d is champion", ErrTransition, n)
		}
		if v.Status == StatusCandidate {
			v.Status = StatusRetired
		}
		r.note(v, "retired: "+note)
		return nil
	})
}

// Amend applies fn to version n (its metrics or notes; changing Status or
// Number through Amend is refused with ErrTransition) and stores it.
func (r *Registry) Amend(ctx context.Context, n int64, fn func(v *Version) error) (Version, error) {
	var out Version
	err := r.cfg.Backend.Update(ctx, func(tx Tx) error {
		v, err := tx.Version(n)
		if err != nil {
			return err
		}
		before := v.Status
		if err := fn(v); err != nil {
			return err
		}
		if v.Number != n {
			return fmt.Errorf("%w: Amend changed the version number", ErrTransition)
		}
		if v.Status != before && !(before == StatusCandidate && v.Status == StatusRetired) {
			return fmt.Errorf("%w: Amend changed status %s → %s (use Promote or Rollback)", ErrTransition, before, v.Status)
		}
		out = *v
		return nil
	})
	if err != nil {
		return Version{}, err
	}
	r.announce(ctx, out)
	return out, nil
}

// AddNote appends a note to version n.
func (r *Registry) AddNote(ctx context.Context, n int64, text string) (Version, error) {
	return r.Amend(ctx, n, func(v *Version) error { r.note(v, text); return nil })
}

// announce publishes versions on the topic, best effort.
func (r *Registry) announce(ctx context.Context, vs ...Version) {
	if r.cfg.Announce == nil || len(vs) == 0 {
		return
	}
	msgs := make([]kafka.Message, 0, len(vs))
	for i := range vs {
		b, err := vs[i].Encode()
		if err != nil {
			continue
		}
		msgs = append(msgs, kafka.Message{Topic: r.cfg.Topic, Key: []byte(strconv.FormatInt(vs[i].Number, 10)), Value: b})
	}
	if err := r.cfg.Announce.Send(ctx, msgs...); err != nil {
		r.cfg.Logger.Warn("model version announcement failed", "versions", len(msgs), "err", err)
	}
}

// PreviousGood returns the most recent champion before the current one
// that was not rolled back (ErrNoPrevious).
func PreviousGood(meta Meta, versions []Version) (Version, error) {
	byNum := make(map[int64]Version, len(versions))
	for _, v := range versions {
		byNum[v.Number] = v
	}
	hist := slices.Clone(meta.History)
	for i := len(hist) - 1; i >= 0; i-- {
		v, ok := byNum[hist[i]]
		if !ok || v.Number == meta.Champion || v.Status == StatusRolledBack {
			continue
		}
		return v, nil
	}
	return Version{}, ErrNoPrevious
}
