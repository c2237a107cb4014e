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
	// ErasureTTL is how long an erasure marker stops events of an erased
	// user from rebuilding a profile; it must outlive the clickstream's
	// retention so a replay cannot resurrect anyone. Default 400 days.
	ErasureTTL time.Duration `yaml:"erasure_ttl"`
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
	if c.ErasureTTL <= 0 {
		c.ErasureTTL = 400 * 24 * time.Hour
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
// runs in one MULTI/EXEC transaction; on a Cluster the checkpoint is written
// after every user script of the flush has succeeded (see Write). User ids
// appear in keys through HashTag.
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

// StateTTL is how long a user's state lives without a write (≤ 0: forever).
func (s *Store) StateTTL() time.Duration { return s.cfg.TTL }

// UserKey is the key of a user's state hash.
func (s *Store) UserKey(user string) string { return s.cfg.Prefix + ":{" + HashTag(user) + "}:p" }

// HashTag is a user id as it appears between the braces of the user's keys.
// Redis Cluster hashes a key by the text between its first '{' and the first
// '}' after it (the whole key when that text is empty), so an id that
// contains '}' or is empty would scatter the user's keys over several slots
// and make the write script fail with CROSSSLOT. Such ids are
// percent-escaped ('%' → "%25", '}' → "%7D", "" → "%"), which keeps the
// mapping one-to-one; ids without '%' and '}' (pseudonyms and ordinary ids)
// are used as they are.
func HashTag(user string) string {
	if user == "" {
		return "%"
	}
	if !strings.ContainsAny(user, "%}") {
		return user
	}
	var b strings.Builder
	b.Grow(len(user) + 8)
	for i := 0; i < len(user); i++ {
		switch c := user[i]; c {
		case '%':
			b.WriteString("%25")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UserOfKey returns the user id of a key made by UserKey, and false for any
// other key.
func (s *Store) UserOfKey(key string) (string, bool) {
	tag, ok := strings.CutPrefix(key, s.cfg.Prefix+":{")
	if !ok {
		return "", false
	}
	if tag, ok = strings.CutSuffix(tag, "}:p"); !ok || tag == "" || strings.Contains(tag, "}") {
		return "", false
	}
	if tag == "%" {
		return "", true
	}
	if !strings.Contains(tag, "%") {
		return tag, true
	}
	var b strings.Builder
	for i := 0; i < len(tag); i++ {
		switch {
		case tag[i] != '%':
			b.WriteByte(tag[i])
		case strings.HasPrefix(tag[i:], "%25"):
			b.WriteByte('%')
			i += 2
		case strings.HasPrefix(tag[i:], "%7D"):
			b.WriteByte('}')
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// ErasedKey is the key of a user's erasure marker. It lives in the user's
// Cluster slot (so the write script can check it atomically) but names
// neither the user nor anything derived from them except a one-way digest:
// the marker outlives the profile it stops from being rebuilt.
func (s *Store) ErasedKey(user string) string {
	return s.cfg.Prefix + ":{" + SlotTag(HashTag(user)) + "}:erased:" + UserDigest(user)
}

// AliasKey is the key naming the profile an anonymous id was merged into.
func (s *Store) AliasKey(id string) string { return s.cfg.Prefix + ":{" + HashTag(id) + "}:alias" }

// UserKeySuffixes lists the suffixes of every key a user can have besides
// the erasure marker (`<prefix>:{<user>}:<suffix>`). Erasure deletes all of
// them; a package that adds a per-user key adds its suffix here.
func UserKeySuffixes() []string { return []string{"p", "alias", "seg", "scores", "timer"} }

// UserKeyPrefix is the prefix every key of the user starts with.
func (s *Store) UserKeyPrefix(user string) string { return s.cfg.Prefix + ":{" + HashTag(user) + "}:" }

// CheckpointKey is the key of a partition's checkpoint.
func (s *Store) CheckpointKey(topic string, partition int) string {
	return s.cfg.Prefix + ":ckpt:{" + s.cfg.Group + "}:" + topic + ":" + strconv.Itoa(partition)
}

func stampField(topic string, partition int) string {
	return "o:" + topic + ":" + strconv.Itoa(partition)
}

// applyScript writes a user's state if the stamp is newer than the stored
// one and the user is not erased. KEYS[1]: user hash, KEYS[2]: erasure
// marker. ARGV: stamp field, stamp, ttl ms (≤0: none), state, revive ("1"
// deletes the erasure marker: the user consented again). Returns 1 when
// written, 0 when fenced, 2 when the user is erased.
const applyScript = `
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[2])
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 's', ARGV[4])
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`

// eraseScript erases one user: it sets the erasure marker and deletes every
// per-user key. KEYS[1]: marker; KEYS[2..]: the user's keys. ARGV: marker
// value, marker ttl ms. Returns the number of keys deleted.
const eraseScript = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local n = 0
for i = 2, #KEYS do n = n + redis.call('DEL', KEYS[i]) end
return n
`

// Erase sets the erasure marker of each user and deletes all their keys,
// one atomic script per user (each user's keys share a slot). From then on
// the ingest write script refuses the user's state, so nothing rebuilds the
// profile unless a newer consent revives it.
func (s *Store) Erase(ctx context.Context, users []string, e Erasure) (deleted int64, err error) {
	sc := redis.NewScript(eraseScript)
	cmds := make([]*redis.Cmd, len(users))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			keys := []string{s.ErasedKey(u)}
			for _, suf := range UserKeySuffixes() {
				keys = append(keys, s.UserKeyPrefix(u)+suf)
			}
			cmds[i] = sc.Eval(ctx, p, keys, e.encode(), s.cfg.ErasureTTL.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("features: erase: %w", err)
	}
	for _, c := range cmds {
		n, _ := c.Int64()
		deleted += n
	}
	return deleted, nil
}

// checkpointScript advances a partition checkpoint unless a later one is
// stored. KEYS[1]: checkpoint hash. ARGV: next offset, watermark ms.
// Returns 1 when written, 0 when fenced.
const checkpointScript = `
local cur = redis.call('HGET', KEYS[1], 'next')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[1], 'wm', ARGV[2])
return 1
`

// Erasure is the marker left by an erasure: events for the user are not
// rebuilt into a profile unless a consent event newer than At grants
// profiling again.
type Erasure struct {
	At      int64 // unix ms (wall clock) of the erasure request
	Receipt string
}

func (e Erasure) encode() string { return strconv.FormatInt(e.At, 10) + ":" + e.Receipt }

func parseErasure(v string) (Erasure, error) {
	at, receipt, ok := strings.Cut(v, ":")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil {
		return Erasure{}, fmt.Errorf("%w: erasure marker %q", ErrCorruptState, v)
	}
	return Erasure{At: n, Receipt: receipt}, nil
}

// Loaded is a user's stored state.
type Loaded struct {
	State State
	// Stamp is the offset of the last event of the partition applied to
	// this state, or -1.
	Stamp int64
	// Found is false when Redis holds no state for the user.
	Found bool
}

// Load reads, in one pipeline, the states of the users in load (for one
// partition) and the erasure markers of the users in load and check.
func (s *Store) Load(ctx context.Context, topic string, partition int, load, check []string) ([]Loaded, map[string]Erasure, error) {
	out := make([]Loaded, len(load))
	if len(load) == 0 && len(check) == 0 {
		return out, nil, nil
	}
	field := stampField(topic, partition)
	cmds := make([]*redis.SliceCmd, len(load))
	marks := make([]*redis.StringCmd, 0, len(load)+len(check))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range load {
			cmds[i] = p.HMGet(ctx, s.UserKey(u), "s", field)
			marks = append(marks, p.Get(ctx, s.ErasedKey(u)))
		}
		for _, u := range check {
			marks = append(marks, p.Get(ctx, s.ErasedKey(u)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("features: load: %w", err)
	}
	var erased map[string]Erasure
	for i, c := range marks {
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("features: load erasure marker: %w", err)
		}
		e, err := parseErasure(v)
		if err != nil {
			return nil, nil, err
		}
		if erased == nil {
			erased = map[string]Erasure{}
		}
		if i < len(load) {
			erased[load[i]] = e
		} else {
			erased[check[i-len(load)]] = e
		}
	}
	for i, c := range cmds {
		vals := c.Val()
		out[i].Stamp = -1
		if len(vals) != 2 {
			continue
		}
		if raw, ok := vals[0].(string); ok {
			if err := out[i].State.UnmarshalBinary([]byte(raw)); err != nil {
				return nil, nil, fmt.Errorf("features: load user state: %w", err)
			}
			out[i].Found = true
		}
		if st, ok := vals[1].(string); ok {
			n, err := strconv.ParseInt(st, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: stamp %q", ErrCorruptState, st)
			}
			out[i].Stamp = n
		}
	}
	return out, erased, nil
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
	// Revive removes the user's erasure marker (a new consent).
	Revive bool
}

// Flush is one atomic unit of work for a partition: the dirty users' states
// and the checkpoint that covers them.
type Flush struct {
	Topic      string
	Partition  int
	Users      []UserWrite
	Checkpoint Checkpoint
	// Aliases maps anonymous ids to the profile they were merged into.
	Aliases map[string]string
	// Extra adds further commands to the users' pipeline (on a standalone
	// server, the flush's transaction; on a Cluster, the round trip before
	// the checkpoint's); they must only touch keys of users in Users or
	// keys of the partition.
	Extra func(p redis.Pipeliner)
}

// FlushStats describes a completed flush.
type FlushStats struct {
	Users    int
	Commands int
	Duration time.Duration
	// Erased lists users whose write was refused because they are erased.
	Erased []string
}

// Write performs the flush. On a standalone server it is one round trip,
// one MULTI/EXEC holding every user's script and the checkpoint. On a
// Cluster the users' scripts (each atomic with its own stamp, in its user's
// slot) go first, as one pipeline over the masters, and the checkpoint is
// advanced in a second round trip only once every user write has succeeded:
// the masters run a pipeline independently, so in one pipeline the
// checkpoint could land while a user write on another master fails, and the
// partition would resume past events that never reached that user. It
// returns ErrFenced when any write was refused because a later writer got
// there first (on a Cluster the checkpoint is then left as it is).
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
	fillUsers := func(p redis.Pipeliner) error {
		userCmds = userCmds[:0]
		for _, u := range f.Users {
			revive := "0"
			if u.Revive {
				revive = "1"
			}
			userCmds = append(userCmds, s.apply.Eval(ctx, p, []string{s.UserKey(u.User), s.ErasedKey(u.User)}, field, u.Stamp, ttl, u.State, revive))
		}
		for anon, user := range f.Aliases {
			if ttl > 0 {
				p.Set(ctx, s.AliasKey(anon), user, time.Duration(ttl)*time.Millisecond)
			} else {
				p.Set(ctx, s.AliasKey(anon), user, 0)
			}
		}
		if f.Extra != nil {
			f.Extra(p)
		}
		return nil
	}
	fillCkpt := func(p redis.Pipeliner) error {
		ckptCmd = s.ckpt.Eval(ctx, p, []string{s.CheckpointKey(f.Topic, f.Partition)}, f.Checkpoint.Next, f.Checkpoint.Watermark)
		return nil
	}
	// EVAL, not EVALSHA: a restarted server has lost its script cache, and
	// inside MULTI a NOSCRIPT error would not stop the other commands. The
	// server still compiles each script body once and caches it.
	var cmds []redis.Cmder
	var err error
	if s.cluster {
		cmds, err = s.rdb.Pipelined(ctx, fillUsers)
		if err == nil && s.anyFenced(userCmds) {
			stats.Commands, stats.Duration = len(cmds), time.Since(start)
			return stats, ErrFenced
		}
		if err == nil {
			var c []redis.Cmder
			c, err = s.rdb.Pipelined(ctx, fillCkpt)
			cmds = append(cmds, c...)
		}
	} else {
		cmds, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			_ = fillUsers(p)
			return fillCkpt(p)
		})
	}
	stats.Commands = len(cmds)
	stats.Duration = time.Since(start)
	if err != nil {
		return stats, fmt.Errorf("features: flush partition %d: %w", f.Partition, err)
	}
	fenced := false
	for i, c := range userCmds {
		switch n, _ := c.Int64(); n {
		case 0:
			fenced = true
		case 2:
			stats.Erased = append(stats.Erased, f.Users[i].User)
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

// anyFenced reports whether a user write script refused its write because
// a newer stamp is stored.
func (s *Store) anyFenced(userCmds []*redis.Cmd) bool {
	for _, c := range userCmds {
		if n, err := c.Int64(); err == nil && n == 0 {
			return true
		}
	}
	return false
}
