package features_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/stream"
)

// These tests run features.Store against the real 3-master Redis Cluster of
// scripts/testenv.sh. On a Cluster every Lua script must touch keys of one
// slot only (the server refuses it with CROSSSLOT otherwise), and a flush
// spans many slots on several masters; see DESIGN.md, "Redis Cluster".

const clusterTopic = "clicks"

func clusterStore(t *testing.T) (*features.Store, *redis.ClusterClient) {
	t.Helper()
	c, prefix := testenv.RedisClusterClient(t)
	s, err := features.NewStore(c, features.StoreConfig{
		Prefix: strings.TrimSuffix(prefix, ":"), Group: "g", TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func keySlot(t *testing.T, c *redis.ClusterClient, key string) int64 {
	t.Helper()
	n, err := c.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	return n
}

// state returns the binary state of a user after n views.
func state(t *testing.T, user string, n int) []byte {
	t.Helper()
	cfg := features.Config{}.WithDefaults()
	var st features.State
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		p := 1.5 + float64(i)
		ev := stream.Event{Schema: 1, EventID: fmt.Sprintf("%s/%d", user, i), Type: stream.TypeView, UserID: user,
			TS: base.Add(time.Duration(i) * time.Minute), ItemID: fmt.Sprintf("item-%d", i%7), Price: &p,
			PriceMicros: int64(p * 1e6), Quantity: 1}
		if got := st.Apply(&ev, features.Env{Cfg: &cfg}); got != features.Applied {
			t.Fatalf("apply %s: %v", ev.EventID, got)
		}
	}
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every key of one user, the erasure marker included, hashes to the same
// slot as Redis computes it, whatever bytes the id holds; so each user's
// write script is a single-slot script. The users of a flush spread over
// every master.
func TestClusterUserKeysShareOneSlot(t *testing.T) {
	s, c := clusterStore(t)
	ids := []string{"u1", "512475445", "Zoë", "anon-3f2a", "a}b", "}", "}x", "{x}", "{", "a{b}c", "%", "%7D", "a%b",
		"x:{y}:p", strings.Repeat("k", 200)}
	for i := 0; i < 300; i++ {
		ids = append(ids, fmt.Sprintf("user-%d", i))
	}
	masters := map[string]bool{}
	shards, err := c.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner := func(slot int64) string {
		for _, sh := range shards {
			if int64(sh.Start) <= slot && slot <= int64(sh.End) {
				return sh.Nodes[0].Addr
			}
		}
		t.Fatalf("slot %d has no owner", slot)
		return ""
	}
	for _, u := range ids {
		want := keySlot(t, c, s.UserKey(u))
		keys := []string{s.ErasedKey(u), s.AliasKey(u)}
		for _, suf := range features.UserKeySuffixes() {
			keys = append(keys, s.UserKeyPrefix(u)+suf)
		}
		for _, k := range keys {
			if got := keySlot(t, c, k); got != want {
				t.Errorf("user %q: key %q in slot %d, its state hash %q in slot %d", u, k, got, s.UserKey(u), want)
			}
		}
		masters[owner(want)] = true
	}
	if len(masters) != 3 {
		t.Errorf("users landed on %d masters, want all 3", len(masters))
	}
	// Distinct ids get distinct keys (the hash tag escaping is injective).
	seen := map[string]string{}
	for _, u := range ids {
		if prev, ok := seen[s.UserKey(u)]; ok {
			t.Errorf("users %q and %q share the key %q", prev, u, s.UserKey(u))
		}
		seen[s.UserKey(u)] = u
	}
	// All checkpoints of a group share the group's slot.
	want := keySlot(t, c, s.CheckpointKey(clusterTopic, 0))
	for p := 1; p < 12; p++ {
		if got := keySlot(t, c, s.CheckpointKey(clusterTopic, p)); got != want {
			t.Errorf("checkpoint of partition %d in slot %d, partition 0 in %d", p, got, want)
		}
	}
}

// A flush of users on every master is written (no script crosses slots),
// read back byte for byte with its offset stamps, and expires with the TTL;
// the checkpoint and the scan of every master agree.
func TestClusterWriteLoadRoundTrip(t *testing.T) {
	s, c := clusterStore(t)
	ctx := context.Background()
	var users []string
	want := map[string][]byte{}
	var writes []features.UserWrite
	for i := 0; i < 200; i++ {
		u := fmt.Sprintf("u-%d", i)
		if i%50 == 0 {
			u += "}odd{"
		}
		users = append(users, u)
		want[u] = state(t, u, 1+i%5)
		writes = append(writes, features.UserWrite{User: u, State: want[u], Stamp: int64(1000 + i)})
	}
	cp := features.Checkpoint{Next: 1200, Watermark: 1_700_000_000_000}
	st, err := s.Write(ctx, features.Flush{Topic: clusterTopic, Partition: 3, Users: writes, Checkpoint: cp,
		Aliases: map[string]string{"anon-1": "u-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Users != len(users) || len(st.Erased) != 0 {
		t.Fatalf("stats %+v", st)
	}
	loaded, erased, err := s.Load(ctx, clusterTopic, 3, append(users, "nobody"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(erased) != 0 {
		t.Fatalf("erased %v", erased)
	}
	for i, u := range users {
		b, err := loaded[i].State.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !loaded[i].Found || loaded[i].Stamp != int64(1000+i) || string(b) != string(want[u]) {
			t.Errorf("user %q: found %v stamp %d, state equal %v", u, loaded[i].Found, loaded[i].Stamp, string(b) == string(want[u]))
		}
		if ttl := c.PTTL(ctx, s.UserKey(u)).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("user %q: TTL %v, want (0, 1h]", u, ttl)
		}
	}
	if last := loaded[len(users)]; last.Found || last.Stamp != -1 {
		t.Errorf("unknown user loaded as %+v", last)
	}
	// Stamps are per partition: another partition sees the state but no stamp.
	other, _, err := s.Load(ctx, clusterTopic, 4, users[:1], nil)
	if err != nil || !other[0].Found || other[0].Stamp != -1 {
		t.Errorf("partition 4 view of %q: %+v %v", users[0], other, err)
	}
	if got, err := s.LoadCheckpoint(ctx, clusterTopic, 3); err != nil || got != cp {
		t.Errorf("checkpoint %+v %v, want %+v", got, err, cp)
	}
	if got, err := s.LoadCheckpoint(ctx, clusterTopic, 5); err != nil || got.Next != -1 {
		t.Errorf("absent checkpoint %+v %v, want Next -1", got, err)
	}
	if got := c.Get(ctx, s.AliasKey("anon-1")).Val(); got != "u-1" {
		t.Errorf("alias %q", got)
	}
	one, ok, err := s.LoadOne(ctx, users[7])
	if b, _ := one.MarshalBinary(); err != nil || !ok || string(b) != string(want[users[7]]) {
		t.Errorf("LoadOne %q: %v %v", users[7], ok, err)
	}
}

// Fencing on a Cluster: a write whose stamp is not newer than the stored
// one, or whose checkpoint is older, is refused with ErrFenced and changes
// nothing it was refused for.
func TestClusterFencing(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name        string
		stamp, next int64
		fenced      bool
	}{
		{"newer stamp and checkpoint", 20, 21, false},
		{"same stamp (a retried write)", 10, 21, true},
		{"older stamp", 5, 21, true},
		{"older checkpoint", 20, 8, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := clusterStore(t)
			first, second := state(t, "u", 1), state(t, "u", 2)
			if _, err := s.Write(ctx, features.Flush{Topic: clusterTopic, Partition: 0,
				Users:      []features.UserWrite{{User: "u", State: first, Stamp: 10}},
				Checkpoint: features.Checkpoint{Next: 11, Watermark: 1}}); err != nil {
				t.Fatal(err)
			}
			_, err := s.Write(ctx, features.Flush{Topic: clusterTopic, Partition: 0,
				Users:      []features.UserWrite{{User: "u", State: second, Stamp: tc.stamp}},
				Checkpoint: features.Checkpoint{Next: tc.next, Watermark: 2}})
			if got := errors.Is(err, features.ErrFenced); got != tc.fenced || (err != nil && !got) {
				t.Fatalf("Write: %v, want fenced=%v", err, tc.fenced)
			}
			loaded, _, err := s.Load(ctx, clusterTopic, 0, []string{"u"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := loaded[0].State.MarshalBinary()
			cp, err := s.LoadCheckpoint(ctx, clusterTopic, 0)
			if err != nil {
				t.Fatal(err)
			}
			wantState, wantStamp, wantNext := first, int64(10), int64(11)
			if tc.stamp > 10 {
				wantState, wantStamp = second, tc.stamp
			}
			if !tc.fenced {
				wantNext = tc.next
			}
			if string(b) != string(wantState) || loaded[0].Stamp != wantStamp || cp.Next != wantNext {
				t.Errorf("stored stamp %d next %d (state is the second: %v), want stamp %d next %d",
					loaded[0].Stamp, cp.Next, string(b) == string(second), wantStamp, wantNext)
			}
		})
	}
}

// A user write that fails on its master must not let the checkpoint, on
// another master, advance: the partition would resume past events that
// never reached the user. (A key of the wrong type stands in for a master
// that fails mid-flush; on a Cluster the flush's commands run on several
// masters at once.)
func TestClusterFailedUserWriteKeepsTheCheckpoint(t *testing.T) {
	s, c := clusterStore(t)
	ctx := context.Background()
	if _, err := s.Write(ctx, features.Flush{Topic: clusterTopic, Partition: 1,
		Checkpoint: features.Checkpoint{Next: 100, Watermark: 1}}); err != nil {
		t.Fatal(err)
	}
	// Pick a broken user on another master than the checkpoint.
	ckptSlot := keySlot(t, c, s.CheckpointKey(clusterTopic, 1))
	broken := ""
	for i := 0; broken == ""; i++ {
		u := fmt.Sprintf("b-%d", i)
		if d := keySlot(t, c, s.UserKey(u)) - ckptSlot; d > 6000 || d < -6000 {
			broken = u
		}
	}
	if err := c.Set(ctx, s.UserKey(broken), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var writes []features.UserWrite
	for _, u := range []string{"ok-1", broken, "ok-2"} {
		writes = append(writes, features.UserWrite{User: u, State: state(t, u, 1), Stamp: 150})
	}
	_, err := s.Write(ctx, features.Flush{Topic: clusterTopic, Partition: 1, Users: writes,
		Checkpoint: features.Checkpoint{Next: 200, Watermark: 2}})
	if err == nil || errors.Is(err, features.ErrFenced) {
		t.Fatalf("Write with a broken user key: %v, want a Redis error", err)
	}
	cp, err := s.LoadCheckpoint(ctx, clusterTopic, 1)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Next != 100 {
		t.Fatalf("checkpoint advanced to %d although a user write failed; want 100", cp.Next)
	}
}

// An erasure marker refuses the user's state (the flush still succeeds and
// names the user), Load reports it, and a revive write removes it.
func TestClusterErasureMarker(t *testing.T) {
	s, c := clusterStore(t)
	ctx := context.Background()
	for _, u := range []string{"gone", "gone}too"} {
		if err := c.Set(ctx, s.ErasedKey(u), "1700000000000:rcpt-1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Write(ctx, features.Flush{Topic: clusterTopic, Partition: 2, Users: []features.UserWrite{
		{User: "gone", State: state(t, "gone", 2), Stamp: 5},
		{User: "gone}too", State: state(t, "gone}too", 2), Stamp: 6},
		{User: "kept", State: state(t, "kept", 2), Stamp: 7},
	}, Checkpoint: features.Checkpoint{Next: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(st.Erased) != "[gone gone}too]" {
		t.Errorf("erased %v, want [gone gone}too]", st.Erased)
	}
	loaded, erased, err := s.Load(ctx, clusterTopic, 2, []string{"gone", "kept"}, []string{"gone}too"})
	if err != nil {
		t.Fatal(err)
	}
	if loaded[0].Found || !loaded[1].Found {
		t.Errorf("found gone=%v kept=%v, want false true", loaded[0].Found, loaded[1].Found)
	}
	for _, u := range []string{"gone", "gone}too"} {
		if e, ok := erased[u]; !ok || e.At != 1_700_000_000_000 || e.Receipt != "rcpt-1" {
			t.Errorf("erasure of %q: %+v %v", u, e, ok)
		}
	}
	if cp, _ := s.LoadCheckpoint(ctx, clusterTopic, 2); cp.Next != 8 {
		t.Errorf("checkpoint %d, want 8: an erased user is not a failed write", cp.Next)
	}
	// A new consent revives the user: the marker goes, the state is written.
	if _, err := s.Write(ctx, features.Flush{Topic: clusterTopic, Partition: 2, Users: []features.UserWrite{
		{User: "gone", State: state(t, "gone", 1), Stamp: 9, Revive: true},
	}, Checkpoint: features.Checkpoint{Next: 10}}); err != nil {
		t.Fatal(err)
	}
	if n := c.Exists(ctx, s.ErasedKey("gone")).Val(); n != 0 {
		t.Error("erasure marker still there after a revive")
	}
	if _, ok, err := s.LoadOne(ctx, "gone"); err != nil || !ok {
		t.Errorf("revived user: %v %v", ok, err)
	}
}
