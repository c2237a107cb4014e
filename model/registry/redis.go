package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// RedisBackend stores the registry in Redis (standalone or Cluster). Keys,
// all under the {models} hash tag so that a Cluster keeps them in one slot
// and transactions span them:
//
//	<prefix>:{models}:meta      string: Meta JSON
//	<prefix>:{models}:index     sorted set: version numbers (score = number)
//	<prefix>:{models}:v:<n>     hash: json (Version), model (bytes), state (bytes)
//
// Every write is a WATCH/MULTI/EXEC transaction that also rewrites the meta
// record, so watching the meta key alone detects every concurrent change.
type RedisBackend struct {
	rdb    redis.UniversalClient
	prefix string
}

// RedisBackendConfig configures a RedisBackend.
type RedisBackendConfig struct {
	// Client to use. Required; Close does not close it.
	Client redis.UniversalClient
	// Prefix of the keys. Default "sp".
	Prefix string
}

// NewRedisBackend returns a backend over cfg.Client.
func NewRedisBackend(cfg RedisBackendConfig) (*RedisBackend, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalidConfig)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sp"
	}
	return &RedisBackend{rdb: cfg.Client, prefix: cfg.Prefix + ":{models}:"}, nil
}

func (b *RedisBackend) metaKey() string  { return b.prefix + "meta" }
func (b *RedisBackend) indexKey() string { return b.prefix + "index" }
func (b *RedisBackend) vKey(n int64) string {
	return b.prefix + "v:" + strconv.FormatInt(n, 10)
}

const txRetries = 50

// Create implements Backend.
func (b *RedisBackend) Create(ctx context.Context, v Version, model, state []byte) (int64, error) {
	var n int64
	err := b.update(ctx, func(tx *txView) (func(redis.Pipeliner), error) {
		m := tx.Meta()
		n = m.Latest + 1
		m.Latest = n
		v.Number = n
		v.ModelBytes = len(model)
		vb, err := json.Marshal(&v)
		if err != nil {
			return nil, err
		}
		fields := []any{"json", vb, "model", model}
		if state != nil {
			fields = append(fields, "state", state)
		}
		return func(p redis.Pipeliner) {
			p.HSet(ctx, b.vKey(n), fields...)
			p.ZAdd(ctx, b.indexKey(), redis.Z{Score: float64(n), Member: n})
		}, nil
	})
	return n, err
}

// update runs fn in a WATCH transaction on the meta key; the commands of
// the function fn returns (if any), the changed versions and the meta
// record are written in one MULTI/EXEC.
func (b *RedisBackend) update(ctx context.Context, fn func(tx *txView) (func(redis.Pipeliner), error)) error {
	for range txRetries {
		err := b.rdb.Watch(ctx, func(rtx *redis.Tx) error {
			raw, err := rtx.Get(ctx, b.metaKey()).Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			meta, err := decodeMeta(raw)
			if err != nil {
				return err
			}
			view := &txView{meta: meta, changed: map[int64]*Version{}, load: func(n int64) (Version, error) {
				return b.get(ctx, rtx, n)
			}}
			extra, err := fn(view)
			if err != nil {
				return err
			}
			view.meta.Revision++
			mb, err := json.Marshal(&view.meta)
			if err != nil {
				return err
			}
			versions := make(map[int64][]byte, len(view.changed))
			for n, v := range view.changed {
				if versions[n], err = json.Marshal(v); err != nil {
					return err
				}
			}
			_, err = rtx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				if extra != nil {
					extra(p)
				}
				for n, vb := range versions {
					p.HSet(ctx, b.vKey(n), "json", vb)
				}
				p.Set(ctx, b.metaKey(), mb, 0)
				return nil
			})
			return err
		}, b.metaKey())
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return err
	}
	return ErrConflict
}

func (b *RedisBackend) get(ctx context.Context, c redis.Cmdable, n int64) (Version, error) {
	raw, err := c.HGet(ctx, b.vKey(n), "json").Bytes()
	if errors.Is(err, redis.Nil) {
		return Version{}, fmt.Errorf("%w: %d", ErrNotFound, n)
	}
	if err != nil {
		return Version{}, err
	}
	return decodeVersion(raw)
}

// Get implements Backend.
func (b *RedisBackend) Get(ctx context.Context, n int64) (Version, error) {
	return b.get(ctx, b.rdb, n)
}

func (b *RedisBackend) field(ctx context.Context, n int64, f string) ([]byte, error) {
	vals, err := b.rdb.HMGet(ctx, b.vKey(n), "json", f).Result()
	if err != nil {
		return nil, err
	}
	if vals[0] == nil {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, n)
	}
	if vals[1] == nil {
		return nil, nil
	}
	s, _ := vals[1].(string)
	return []byte(s), nil
}

// Model implements Backend.
func (b *RedisBackend) Model(ctx context.Context, n int64) ([]byte, error) {
	m, err := b.field(ctx, n, "model")
	if err == nil && m == nil {
		return nil, fmt.Errorf("%w: version %d has no model bytes", ErrCorrupt, n)
	}
	return m, err
}

// State implements Backend.
func (b *RedisBackend) State(ctx context.Context, n int64) ([]byte, error) {
	return b.field(ctx, n, "state")
}

// SetState implements Backend.
func (b *RedisBackend) SetState(ctx context.Context, n int64, state []byte, fn func(m *Meta)) error {
	return b.update(ctx, func(tx *txView) (func(redis.Pipeliner), error) {
		if _, err := tx.load(n); err != nil {
			return nil, err
		}
		if fn != nil {
			fn(tx.Meta())
		}
		return func(p redis.Pipeliner) {
			if state == nil {
				p.HDel(ctx, b.vKey(n), "state")
			} else {
				p.HSet(ctx, b.vKey(n), "state", state)
			}
		}, nil
	})
}

// List implements Backend.
func (b *RedisBackend) List(ctx context.Context) ([]Version, error) {
	ns, err := b.rdb.ZRange(ctx, b.indexKey(), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Version, 0, len(ns))
	for _, s := range ns {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: index member %q", ErrCorrupt, s)
		}
		v, err := b.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Meta implements Backend.
func (b *RedisBackend) Meta(ctx context.Context) (Meta, error) {
	raw, err := b.rdb.Get(ctx, b.metaKey()).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Meta{}, err
	}
	return decodeMeta(raw)
}

// Update implements Backend.
func (b *RedisBackend) Update(ctx context.Context, fn func(tx Tx) error) error {
	return b.update(ctx, func(tx *txView) (func(redis.Pipeliner), error) { return nil, fn(tx) })
}

// Close implements Backend; the client stays open.
func (b *RedisBackend) Close() error { return nil }
