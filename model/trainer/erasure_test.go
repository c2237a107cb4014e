package trainer

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/stream"
)

// redisMentions lists the keys of rdb's database whose name, fields,
// members or values (binary ones included: model bytes, trainer states)
// contain s.
func redisMentions(t *testing.T, rdb *redis.Client, s string) []string {
	t.Helper()
	ctx := context.Background()
	needle := []byte(s)
	var found []string
	it := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		k := it.Val()
		var vals []string
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "string":
			v, err := rdb.Get(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			vals = append(vals, v)
		case "hash":
			h, err := rdb.HGetAll(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range h {
				vals = append(vals, f, v)
			}
		case "zset", "set", "list":
			var err error
			switch typ {
			case "zset":
				vals, err = rdb.ZRange(ctx, k, 0, -1).Result()
			case "set":
				vals, err = rdb.SMembers(ctx, k).Result()
			default:
				vals, err = rdb.LRange(ctx, k, 0, -1).Result()
			}
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("key %q of type %s not checked", k, typ)
		}
		hit := bytes.Contains([]byte(k), needle)
		for _, v := range vals {
			hit = hit || bytes.Contains([]byte(v), needle)
		}
		if hit {
			found = append(found, k)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return found
}

// An erased customer's pending examples (their id, inputs and scores,
// stored inline in a version's trainer state while the repeat-purchase
// label is open) do not outlive the next version in any stored version:
// older versions keep their weights, metrics and audit, not the pending
// examples.
func TestErasedUserLeavesNoStoredVersionAfterTheNext(t *testing.T) {
	rdb := testenv.RedisDB(t)
	b, err := registry.NewRedisBackend(registry.RedisBackendConfig{Client: rdb})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	tr := newTrainer(t, Config{Gate: GateConfig{Disabled: true}}, reg)
	ctx := context.Background()
	const erased = "p1k1:erasedcustomerzz7"
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	off := int64(0)
	process := func(user, typ string, at time.Time) {
		t.Helper()
		s := features.Snapshot{Version: features.SnapshotVersion, ID: fmt.Sprint("ev", off), User: user, TS: at, Type: typ,
			Features: map[string]float64{"purchase_days": 1, "purchases_total": 1, "views_total": 3, "last_seen": float64(at.Unix())}}
		if err := tr.ProcessSnapshot(ctx, 0, off, &s); err != nil {
			t.Fatal(err)
		}
		off++
	}
	// Customers who purchase: each purchase opens a repeat-purchase
	// example, held inline in the trainer state for 90 days.
	for i, u := range []string{erased, "kept-1", erased, "kept-2"} {
		process(u, string(stream.TypePurchase), base.Add(time.Duration(i)*time.Hour))
	}
	v1, err := tr.Checkpoint(ctx)
	if err != nil || v1 == 0 {
		t.Fatalf("first version: %d, %v", v1, err)
	}
	if got := redisMentions(t, rdb, erased); len(got) == 0 {
		t.Fatal("version 1 does not hold the customer's pending examples: the test checks nothing")
	}
	if n := tr.Forget(erased, base.Add(5*time.Hour)); n == 0 {
		t.Fatal("Forget dropped nothing")
	}
	// Time passes for the others: their purchase examples mature and are
	// learnt, and the next version is cut.
	process("kept-3", string(stream.TypeView), base.Add(3*24*time.Hour))
	v2, err := tr.Checkpoint(ctx)
	if err != nil || v2 <= v1 {
		t.Fatalf("next version: %d (after %d), %v", v2, v1, err)
	}
	if got := redisMentions(t, rdb, erased); len(got) > 0 {
		t.Fatalf("after the erasure and version %d, keys still name the erased customer: %v", v2, got)
	}
	// The others' pending examples are still resumable from the latest
	// version, and the older version kept its audit and positions.
	if got := redisMentions(t, rdb, "kept-1"); len(got) == 0 {
		t.Fatal("the latest version lost the other customers' pending examples")
	}
	raw, err := reg.State(ctx, v1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeState(raw)
	if err != nil || st.Partitions[0] == nil || len(st.Inline) != 0 {
		t.Fatalf("version %d's pruned state: %+v, %v", v1, st, err)
	}
	// A restart resumes from the latest version as before.
	tr2 := newTrainer(t, Config{Gate: GateConfig{Disabled: true}}, reg)
	if tr2.Holds("kept-1") == 0 || tr2.Holds(erased) != 0 {
		t.Fatalf("restored trainer holds kept-1 %d, erased %d", tr2.Holds("kept-1"), tr2.Holds(erased))
	}
}
