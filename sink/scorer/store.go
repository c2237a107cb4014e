package scorer

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/streamprofile/streamprofile/features"
)

// store is the scorer's Redis layout (see doc.go, "Redis keys").
type store struct {
	rdb     redis.UniversalClient
	fs      *features.Store // key helpers shared with the ingester
	prefix  string
	group   string
	topic   string
	cluster bool
	ttlMs   int64
	write   *redis.Script
	ckpt    *redis.Script
}

func newStore(rdb redis.UniversalClient, cfg *Config) (*store, error) {
	fs, err := features.NewStore(rdb, features.StoreConfig{Prefix: cfg.Prefix, Group: cfg.Group})
	if err != nil {
		return nil, err
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &store{
		rdb: rdb, fs: fs, prefix: cfg.Prefix, group: cfg.Group, topic: cfg.Topic, cluster: cluster,
		ttlMs: cfg.TTL.Milliseconds(),
		write: redis.NewScript(writeScript), ckpt: redis.NewScript(checkpointScript),
	}, nil
}

func (s *store) segKey(u string) string    { return s.fs.UserKeyPrefix(u) + "seg" }
func (s *store) scoresKey(u string) string { return s.fs.UserKeyPrefix(u) + "scores" }
func (s *store) timerKey(u string) string  { return s.fs.UserKeyPrefix(u) + "timer" }

// indexKey is the set of a segment's members.
func indexKey(prefix, seg string) string { return prefix + ":segidx:{" + seg + "}" }

func (s *store) indexKey(seg string) string { return indexKey(s.prefix, seg) }

// timersKey is the sorted set of a partition's timers (member: user,
// score: due time in unix ms). It shares the group's slot with the
// checkpoints and timersListKey.
func (s *store) timersKey(p int) string {
	return s.prefix + ":timers:{" + s.group + "}:" + s.topic + ":" + strconv.Itoa(p)
}

// timersListKey lists every partition's timersKey, so that erasure can
// find them.
func (s *store) timersListKey() string { return s.prefix + ":timers:{" + s.group + "}" }

// checkpointKey is the partition's checkpoint hash: the ingester's key
// scheme (features.Store.CheckpointKey) in the scorer's group.
func (s *store) checkpointKey(p int) string { return s.fs.CheckpointKey(s.topic, p) }

func (s *store) stampFields(p int) (o, q string) {
	ps := s.topic + ":" + strconv.Itoa(p)
	return "o:" + ps, "q:" + ps
}

// writeScript writes one user's scorer state, if the user is not erased and
// the stamp (offset, sequence) is newer than the stored one.
//
// KEYS: seg, scores, timer, erasure marker.
// ARGV: offset field, offset, sequence field, sequence, ttl ms, membership
// ("" deletes seg), state, due ms, delete-all flag, then score field/value
// pairs (none: scores untouched; a lone "-" deletes them). The delete-all
// flag (a user gone: retention, a profiling withdrawal) deletes the keys
// but keeps the stamp in the timer hash, which then holds nothing else:
// records of the user replayed from below the checkpoint after a crash
// are then known as applied, instead of being applied again to a new
// user.
// Returns 1 when written, 0 when fenced, 2 when the user is erased.
const writeScript = `
if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end
local co = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '-2')
local cq = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
local o, q = tonumber(ARGV[2]), tonumber(ARGV[4])
if co > o or (co == o and cq >= q) then return 0 end
local ttl = tonumber(ARGV[5])
if ARGV[9] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ttl)
  return 1
end
if ARGV[6] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[6], 'PX', ttl)
end
if #ARGV >= 10 then
  redis.call('DEL', KEYS[2])
  if ARGV[10] ~= '-' then
    redis.call('HSET', KEYS[2], unpack(ARGV, 10))
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 's', ARGV[7], 'due', ARGV[8])
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
`

// checkpointScript advances a partition checkpoint unless a later one is
// stored. KEYS[1]: checkpoint hash. ARGV: next offset, clock ms, then
// optionally the item table and the offset it covers.
// Returns 1 when written, 0 when fenced.
const checkpointScript = `
local cur = redis.call('HGET', KEYS[1], 'next')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[1], 'wm', ARGV[2])
if #ARGV >= 4 then redis.call('HSET', KEYS[1], 'items', ARGV[3], 'items_next', ARGV[4]) end
return 1
`

// checkpoint is a partition's stored position.
type checkpoint struct {
	Next      int64 // next offset to read; -1 when none
	Clock     int64 // partition clock, unix ms
	Items     []byte
	ItemsNext int64 // offset the item table covers up to (exclusive); -1 none
}

func (s *store) loadCheckpoint(ctx context.Context, p int) (checkpoint, error) {
	vals, err := s.rdb.HMGet(ctx, s.checkpointKey(p), "next", "wm", "items", "items_next").Result()
	if err != nil {
		return checkpoint{}, fmt.Errorf("scorer: load checkpoint: %w", err)
	}
	cp := checkpoint{Next: -1, ItemsNext: -1}
	num := func(v any, dst *int64) error {
		str, ok := v.(string)
		if !ok {
			return nil
		}
		n, err := strconv.ParseInt(str, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: checkpoint field %q", ErrCorrupt, str)
		}
		*dst = n
		return nil
	}
	if err := errors.Join(num(vals[0], &cp.Next), num(vals[1], &cp.Clock), num(vals[3], &cp.ItemsNext)); err != nil {
		return checkpoint{}, err
	}
	if str, ok := vals[2].(string); ok {
		cp.Items = []byte(str)
	}
	return cp, nil
}

// loaded is a user's stored scorer state.
type loaded struct {
	state  []byte
	mem    []byte
	o, q   int64
	found  bool
	erased bool
}

// load reads, in one round trip, the stored state of the users in load
// and the erasure markers of the users in load and check.
func (s *store) load(ctx context.Context, p int, users, check []string) ([]loaded, map[string]bool, error) {
	out := make([]loaded, len(users))
	if len(users)+len(check) == 0 {
		return out, nil, nil
	}
	of, qf := s.stampFields(p)
	hm := make([]*redis.SliceCmd, len(users))
	seg := make([]*redis.StringCmd, len(users))
	marks := make([]*redis.IntCmd, 0, len(users)+len(check))
	_, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, u := range users {
			hm[i] = pl.HMGet(ctx, s.timerKey(u), "s", of, qf)
			seg[i] = pl.Get(ctx, s.segKey(u))
			marks = append(marks, pl.Exists(ctx, s.fs.ErasedKey(u)))
		}
		for _, u := range check {
			marks = append(marks, pl.Exists(ctx, s.fs.ErasedKey(u)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("scorer: load: %w", err)
	}
	var erased map[string]bool
	for i, m := range marks {
		if m.Val() == 0 {
			continue
		}
		if erased == nil {
			erased = map[string]bool{}
		}
		if i < len(users) {
			erased[users[i]] = true
		} else {
			erased[check[i-len(users)]] = true
		}
	}
	for i := range users {
		l := &out[i]
		l.o, l.q = -2, 0
		vals := hm[i].Val()
		if len(vals) == 3 {
			if str, ok := vals[0].(string); ok {
				l.state, l.found = []byte(str), true
			}
			for j, dst := range []*int64{&l.o, &l.q} {
				if str, ok := vals[j+1].(string); ok {
					n, err := strconv.ParseInt(str, 10, 64)
					if err != nil {
						return nil, nil, fmt.Errorf("%w: stamp %q", ErrCorrupt, str)
					}
					*dst = n
				}
			}
		}
		if b, err := seg[i].Bytes(); err == nil {
			l.mem = b
		}
		l.erased = erased[users[i]]
	}
	return out, erased, nil
}

// userWrite is one user's state to write in phase 1 of a flush.
type userWrite struct {
	user   string
	o, q   int64
	mem    []byte // nil: no membership (seg deleted)
	state  []byte
	due    int64
	scores []any // field/value pairs; nil: unchanged
	gone   bool  // delete the user's scorer keys, all but the stamp
}

// Results of writeScript.
const (
	writeFenced  = 0
	writeOK      = 1
	writeErased  = 2
	writeUnknown = -1
)

// writeUsers runs phase 1 of a flush: one script per user (each atomic in
// the user's slot), pipelined. It returns each write's result.
func (s *store) writeUsers(ctx context.Context, p int, ws []userWrite) ([]int64, error) {
	res := make([]int64, len(ws))
	if len(ws) == 0 {
		return res, nil
	}
	of, qf := s.stampFields(p)
	cmds := make([]*redis.Cmd, len(ws))
	_, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, w := range ws {
			gone := "0"
			if w.gone {
				gone = "1"
			}
			args := make([]any, 0, 9+len(w.scores))
			args = append(args, of, w.o, qf, w.q, s.ttlMs, w.mem, w.state, w.due, gone)
			args = append(args, w.scores...)
			cmds[i] = s.write.Eval(ctx, pl, []string{s.segKey(w.user), s.scoresKey(w.user), s.timerKey(w.user), s.fs.ErasedKey(w.user)}, args...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scorer: write users of partition %d: %w", p, err)
	}
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil {
			n = writeUnknown
		}
		res[i] = n
	}
	return res, nil
}

// indexOp adds (add) or removes a user from a segment's index.
type indexOp struct {
	user, seg string
	add       bool
}

// timerOp sets (due > 0) or removes a user's timer.
type timerOp struct {
	user string
	due  int64
}

// commit runs phase 2 of a flush: index and timer updates and the
// checkpoint, in one MULTI/EXEC on a standalone server and one pipeline on
// a Cluster. items, when not nil, is saved with the checkpoint as covering
// offsets below cp.Next.
func (s *store) commit(ctx context.Context, p int, idx []indexOp, timers []timerOp, cp checkpoint, items []byte) error {
	var ck *redis.Cmd
	fill := func(pl redis.Pipeliner) error {
		for _, op := range idx {
			if op.add {
				pl.SAdd(ctx, s.indexKey(op.seg), op.user)
			} else {
				pl.SRem(ctx, s.indexKey(op.seg), op.user)
			}
		}
		tk := s.timersKey(p)
		for _, t := range timers {
			if t.due > 0 {
				pl.ZAdd(ctx, tk, redis.Z{Score: float64(t.due), Member: t.user})
			} else {
				pl.ZRem(ctx, tk, t.user)
			}
		}
		args := []any{cp.Next, cp.Clock}
		if items != nil {
			args = append(args, items, cp.Next)
		}
		ck = s.ckpt.Eval(ctx, pl, []string{s.checkpointKey(p)}, args...)
		return nil
	}
	var err error
	if s.cluster {
		_, err = s.rdb.Pipelined(ctx, fill)
	} else {
		_, err = s.rdb.TxPipelined(ctx, fill)
	}
	if err != nil {
		return fmt.Errorf("scorer: commit partition %d: %w", p, err)
	}
	if n, _ := ck.Int64(); n == 0 {
		return ErrFenced
	}
	return nil
}

// registerPartition records the partition's timer set for erasure.
func (s *store) registerPartition(ctx context.Context, p int) error {
	return s.rdb.SAdd(ctx, s.timersListKey(), s.timersKey(p)).Err()
}

// dueTimers returns up to limit users whose timer is due at or before
// clock, with their due times.
func (s *store) dueTimers(ctx context.Context, p int, clock int64, limit int) ([]redis.Z, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.timersKey(p), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(clock, 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("scorer: due timers of partition %d: %w", p, err)
	}
	return zs, nil
}

// nextTimer returns the earliest due time of the partition (false: none).
func (s *store) nextTimer(ctx context.Context, p int) (int64, bool, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, s.timersKey(p), 0, 0).Result()
	if err != nil {
		return 0, false, fmt.Errorf("scorer: next timer of partition %d: %w", p, err)
	}
	if len(zs) == 0 {
		return 0, false, nil
	}
	return int64(zs[0].Score), true, nil
}

// forget removes users from the given segment indexes and from every
// partition's timers, and deletes their scorer keys.
func (s *store) forget(ctx context.Context, users, segments []string) error {
	tks, err := s.rdb.SMembers(ctx, s.timersListKey()).Result()
	if err != nil {
		return fmt.Errorf("scorer: forget: %w", err)
	}
	_, err = s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for _, u := range users {
			pl.Del(ctx, s.segKey(u))
			pl.Del(ctx, s.scoresKey(u))
			pl.Del(ctx, s.timerKey(u))
			for _, seg := range segments {
				pl.SRem(ctx, s.indexKey(seg), u)
			}
			for _, tk := range tks {
				pl.ZRem(ctx, tk, u)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scorer: forget: %w", err)
	}
	return nil
}

// erased reports whether the user's erasure marker exists.
func (s *store) erased(ctx context.Context, user string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.fs.ErasedKey(user)).Result()
	return n > 0, err
}
