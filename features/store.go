package features

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// StoreConfig configures the Redis layout.
type StoreConfig struct {
	// Prefix starts every key. Default "sp".
	Prefix string `yaml:"prefix"`
	// TTL expires a user's keys after this long without a write (inactive
	// users). Negative disables expiry. Default 30 days.
	TTL time.Duration `yaml:"ttl"`
	// Group names the consumer group whose partition checkpoints this store
	// keeps. Default "streamprofile".
	Group string `yaml:"group"`
}

func (c StoreConfig) withDefaults() StoreConfig {
	if c.Prefix == "" {
		c.Prefix = "sp"
	}
	if c.TTL == 0 {
		c.TTL = 30 * 24 * time.Hour
	}
	if c.Group == "" {
		c.Group = "streamprofile"
	}
	return c
}

// Validate reports invalid settings.
func (c StoreConfig) Validate() error {
	c = c.withDefaults()
	if strings.ContainsAny(c.Prefix, "{} ") {
		return fmt.Errorf("features: store prefix %q must not contain braces or spaces", c.Prefix)
	}
	if strings.ContainsAny(c.Group, "{} ") {
		return fmt.Errorf("features: store group %q must not contain braces or spaces", c.Group)
	}
	return nil
}

// ErrFenced is returned by Flush when Redis already holds state written from
// a later offset of the same partition: another processor owns (or owned)
// the partition. The caller must drop its cached state and resume from the
// stored checkpoint.
var ErrFenced = errors.New("features: partition fenced by a newer writer")

// Store keeps user state and partition checkpoints in Redis.
//
// Layout (see DESIGN.md): user state lives in one hash per user,
// `<prefix>:{<user>}:p`, whose `{<user>}` hash tag puts every key of one user
// in the same Cluster slot. Field `s` holds the binary state; field
// `o:<topic>:<partition>` holds the offset of the last event of that
// partition applied to this user. Both are written by one Lua script, so a
// user's state and the offset that produced it change atomically in any
// deployment, Cluster included. Partition checkpoints (next offset to read
// and watermark) live in `<prefix>:ckpt:{<group>}:<topic>:<partition>`. On a
// standalone server the whole flush (every user script and the checkpoint)
// runs in one MULTI/EXEC transaction.
type Store struct {
	rdb     redis.UniversalClient
	cfg     StoreConfig
	cluster bool
	apply   *redis.Script
	ckpt    *redis.Script
}

// NewStore returns a store over rdb (a *redis.Client or *redis.ClusterClient).
func NewStore(rdb redis.UniversalClient, cfg StoreConfig) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("features: nil redis client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &Store{
		rdb:     rdb,
		cfg:     cfg.withDefaults(),
		cluster: cluster,
		apply:   redis.NewScript(applyScript),
		ckpt:    redis.NewScript(checkpointScript),
	}, nil
}

// Client returns the underlying Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Config returns the effective configuration.
func (s *Store) Config() StoreConfig { return s.cfg }

// UserKey is the key of a user's state hash.
func (s *Store) UserKey(user string) string { return s.cfg.Prefix + ":{" + user + "}:p" }

// UserKeyPrefix is the prefix every key of the user starts with.
func (s *Store) UserKeyPrefix(user string) string { return s.cfg.Prefix + ":{" + user + "}:" }

// CheckpointKey is the key of a partition's checkpoint.
func (s *Store) CheckpointKey(topic string, partition int) string {
	return s.cfg.Prefix + ":ckpt:{" + s.cfg.Group + "}:" + topic + ":" + strconv.Itoa(partition)
}

func stampField(topic string, partition int) string {
	return "o:" + topic + ":" + strconv.Itoa(partition)
}

// applyScript writes a user's state if the stamp is newer than the stored
// one. KEYS[1]: user hash. ARGV: stamp field, stamp, ttl ms (≤0: none),
// state. Returns 1 when written, 0 when fenced.
const applyScript = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 's', ARGV[4])
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`

// checkpointScript advances a partition checkpoint unless a later one is
// stored. KEYS[1]: checkpoint hash. ARGV: next offset, watermark ms.
// Returns 1 when written, 0 when fenced.
const checkpointScript = `
local cur = redis.call('HGET', KEYS[1], 'next')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[1], 'wm', ARGV[2])
return 1
`

// Loaded is a user's stored state.
type Loaded struct {
	State State
	// Stamp is the offset of the last event of the partition applied to
	// this state, or -1.
	Stamp int64
	// Found is false when Redis holds no state for the user.
	Found bool
}

// Load reads the states of users for one partition in one pipeline.
func (s *Store) Load(ctx context.Context, topic string, partition int, users []string) ([]Loaded, error) {
	out := make([]Loaded, len(users))
	if len(users) == 0 {
		return out, nil
	}
	field := stampField(topic, partition)
	cmds := make([]*redis.SliceCmd, len(users))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.HMGet(ctx, s.UserKey(u), "s", field)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("features: load: %w", err)
	}
	for i, c := range cmds {
		vals := c.Val()
		out[i].Stamp = -1
		if len(vals) != 2 {
			continue
		}
		if raw, ok := vals[0].(string); ok {
			if err := out[i].State.UnmarshalBinary([]byte(raw)); err != nil {
				return nil, fmt.Errorf("features: load user state: %w", err)
			}
			out[i].Found = true
		}
		if st, ok := vals[1].(string); ok {
			n, err := strconv.ParseInt(st, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: stamp %q", ErrCorruptState, st)
			}
			out[i].Stamp = n
		}
	}
	return out, nil
}

// LoadOne reads one user's state without partition stamp.
func (s *Store) LoadOne(ctx context.Context, user string) (State, bool, error) {
	raw, err := s.rdb.HGet(ctx, s.UserKey(user), "s").Bytes()
	if errors.Is(err, redis.Nil) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("features: load: %w", err)
	}
	var st State
	if err := st.UnmarshalBinary(raw); err != nil {
		return State{}, false, err
	}
	return st, true, nil
}

// Checkpoint is a partition's resume point.
type Checkpoint struct {
	Next      int64 // next offset to read; -1 when none is stored
	Watermark int64 // unix ms
}

// LoadCheckpoint reads the partition's checkpoint.
func (s *Store) LoadCheckpoint(ctx context.Context, topic string, partition int) (Checkpoint, error) {
	vals, err := s.rdb.HMGet(ctx, s.CheckpointKey(topic, partition), "next", "wm").Result()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("features: load checkpoint: %w", err)
	}
	cp := Checkpoint{Next: -1}
	if v, ok := vals[0].(string); ok {
		if cp.Next, err = strconv.ParseInt(v, 10, 64); err != nil {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint %q", ErrCorruptState, v)
		}
	}
	if v, ok := vals[1].(string); ok {
		if cp.Watermark, err = strconv.ParseInt(v, 10, 64); err != nil {
			return Checkpoint{}, fmt.Errorf("%w: watermark %q", ErrCorruptState, v)
		}
	}
	return cp, nil
}

// UserWrite is one user's state to write.
type UserWrite struct {
	User  string
	State []byte // MarshalBinary output
	Stamp int64  // offset of the last applied event of the partition
}

// Flush is one atomic unit of work for a partition: the dirty users' states
// and the checkpoint that covers them.
type Flush struct {
	Topic      string
	Partition  int
	Users      []UserWrite
	Checkpoint Checkpoint
	// Extra adds further commands to the same pipeline (and, on a
	// standalone server, the same transaction); they must only touch keys
	// of users in Users or keys of the partition.
	Extra func(p redis.Pipeliner)
}

// FlushStats describes a completed flush.
type FlushStats struct {
	Users    int
	Commands int
	Duration time.Duration
}

// Write performs the flush in one round trip: one MULTI/EXEC on a
// standalone server, one pipeline on a Cluster (where every user's write is
// still atomic with its own stamp). It returns ErrFenced when any write was
// refused because a later writer got there first.
func (s *Store) Write(ctx context.Context, f Flush) (FlushStats, error) {
	start := time.Now()
	stats := FlushStats{Users: len(f.Users)}
	field := stampField(f.Topic, f.Partition)
	ttl := int64(-1)
	if s.cfg.TTL > 0 {
		ttl = s.cfg.TTL.Milliseconds()
	}
	var userCmds []*redis.Cmd
	var ckptCmd *redis.Cmd
	fill := func(p redis.Pipeliner) error {
		userCmds = userCmds[:0]
		for _, u := range f.Users {
			userCmds = append(userCmds, s.apply.Eval(ctx, p, []string{s.UserKey(u.User)}, field, u.Stamp, ttl, u.State))
		}
		if f.Extra != nil {
			f.Extra(p)
		}
		ckptCmd = s.ckpt.Eval(ctx, p, []string{s.CheckpointKey(f.Topic, f.Partition)}, f.Checkpoint.Next, f.Checkpoint.Watermark)
		return nil
	}
	// EVAL, not EVALSHA: a restarted server has lost its script cache, and
	// inside MULTI a NOSCRIPT error would not stop the other commands. The
	// server still compiles each script body once and caches it.
	var cmds []redis.Cmder
	var err error
	if s.cluster {
		cmds, err = s.rdb.Pipelined(ctx, fill)
	} else {
		cmds, err = s.rdb.TxPipelined(ctx, fill)
	}
	stats.Commands = len(cmds)
	stats.Duration = time.Since(start)
	if err != nil {
		return stats, fmt.Errorf("features: flush partition %d: %w", f.Partition, err)
	}
	fenced := false
	for _, c := range userCmds {
		if n, _ := c.Int64(); n == 0 {
			fenced = true
		}
	}
	if n, _ := ckptCmd.Int64(); n == 0 {
		fenced = true
	}
	if fenced {
		return stats, ErrFenced
	}
	return stats, nil
}
