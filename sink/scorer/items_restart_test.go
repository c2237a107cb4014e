package scorer

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/stream"
)

// A saved item table covers exactly the records below its items_next,
// also while a restarted processor is still relearning: every table the
// checkpoint holds at any moment is the one learnt from that prefix of the
// snapshots, and the last one is the one learnt from all of them.
func TestSavedItemTableIsItsPrefix(t *testing.T) {
	e := newIT(t, 1)
	s := newStory()
	for i := 0; i < 400; i++ {
		u := "u-" + strconv.Itoa(i%40)
		s.add(u, stream.TypeView, "item-"+strconv.Itoa((i*7)%60), float64(10+i%13), t0.Add(time.Duration(i)*time.Second))
	}
	e.publish(t, s.snaps)
	ctx := context.Background()
	first := e.config(func(c *Config) { c.Items.SaveInterval, c.FlushEvents, c.MaxBatch = time.Hour, 20, 10 })
	ckpt := e.prefix + ":ckpt:{" + first.Group + "}:" + e.topic + ":0"
	type saved struct {
		next, itemsNext int64
		items           string
	}
	load := func() saved {
		v, err := e.rdb.HMGet(ctx, ckpt, "next", "items_next", "items").Result()
		if err != nil || v[0] == nil || v[1] == nil || v[2] == nil {
			return saved{next: -1, itemsNext: -1}
		}
		a, _ := strconv.ParseInt(v[0].(string), 10, 64)
		b, _ := strconv.ParseInt(v[1].(string), 10, 64)
		return saved{a, b, v[2].(string)}
	}
	total := int64(len(s.snaps))
	wait := func(seen func(saved)) {
		deadline := time.Now().Add(time.Minute)
		for {
			c := load()
			seen(c)
			if c.next == total && c.itemsNext == total {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("checkpoint at %d, items at %d; want %d", c.next, c.itemsNext, total)
			}
			time.Sleep(time.Millisecond)
		}
	}
	_, stop := e.start(t, first)
	deadline := time.Now().Add(time.Minute)
	for load().next != total {
		if time.Now().After(deadline) {
			t.Fatal("the first scorer did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if c := load(); c.itemsNext >= total/2 {
		t.Fatalf("item table saved at %d: the test needs it well below the checkpoint %d", c.itemsNext, total)
	}
	// The restarted scorer saves its table at every flush it may.
	second := first
	second.Items.SaveInterval = 10 * time.Millisecond
	var states []saved
	_, stop2 := e.start(t, second)
	wait(func(c saved) {
		if c.itemsNext >= 0 && (len(states) == 0 || states[len(states)-1] != c) {
			states = append(states, c)
		}
	})
	stop2()
	learnt := func(n int64) []byte {
		tab := newItemTable(second.Items.withDefaults())
		en := &engine{items: tab}
		for i := range s.snaps[:n] {
			en.learn(&s.snaps[i])
		}
		return tab.marshal()
	}
	for _, c := range states {
		if c.itemsNext > total {
			t.Fatalf("items_next %d beyond the %d records", c.itemsNext, total)
		}
		if want := learnt(c.itemsNext); !slices.Equal([]byte(c.items), want) {
			t.Fatalf("the table saved with items_next %d (checkpoint %d) is not the one learnt from the first %d records",
				c.itemsNext, c.next, c.itemsNext)
		}
	}
	t.Logf("%d saved tables checked", len(states))
}
