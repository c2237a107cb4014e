package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/streamprofile/streamprofile/data"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/model/registry"
	"github.com/streamprofile/streamprofile/stream"
	"github.com/streamprofile/streamprofile/stream/source"
)

// readEvents reads a bundled dataset, sorted by event time (stable), which
// is the order a keyed stream delivers per user.
func readEvents(tb testing.TB, format source.Format, name string) []stream.Event {
	tb.Helper()
	r, c, err := source.Open(format, source.EmbeddedPrefix+name)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	var evs []stream.Event
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		evs = append(evs, rec.Event)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].TS.Before(evs[j].TS) })
	return evs
}

// buildSnapshots applies events in order to per-user feature states, as
// the ingester does (events behind the watermark are dropped as late), and
// returns one snapshot per applied behavioural event. Events at or after
// until are not used. At each tick time (in order), a profile read of every
// customer (purchase_days ≥ 1) at that time is emitted too, typed "view"
// (it is not a purchase) with id "tick:<user>:<unix>": the profile as it
// was at the tick, without any event after it.
func buildSnapshots(evs []stream.Event, until time.Time, ticks []time.Time) []features.Snapshot {
	cfg := features.Config{}.WithDefaults()
	states := map[string]*features.State{}
	var order []string
	var out []features.Snapshot
	var maxTS int64
	tick := 0
	emitTicks := func(before time.Time) {
		for tick < len(ticks) && !ticks[tick].After(before) {
			at := ticks[tick]
			for _, u := range order {
				st := states[u]
				p := st.Evaluate(at, &cfg)
				if p.Vector[features.PurchaseDays] < 1 {
					continue
				}
				out = append(out, features.Snapshot{Version: features.SnapshotVersion, ID: fmt.Sprintf("tick:%s:%d", u, at.Unix()),
					User: u, TS: at, Type: string(stream.TypeView), Features: p.Vector.Map()})
			}
			tick++
		}
	}
	for i := range evs {
		ev := &evs[i]
		if !until.IsZero() && !ev.TS.Before(until) {
			break
		}
		emitTicks(ev.TS)
		if ev.Type == stream.TypeConsent || ev.Type == stream.TypeIdentify {
			continue
		}
		ts := ev.TS.UnixMilli()
		wm := maxTS - cfg.AllowedLateness.Milliseconds()
		if maxTS > 0 && ts < wm {
			continue
		}
		maxTS = max(maxTS, ts)
		u := ev.ProfileKey()
		st := states[u]
		if st == nil {
			st = &features.State{}
			states[u] = st
			order = append(order, u)
		}
		if st.Apply(ev, features.Env{Cfg: &cfg, Watermark: maxTS - cfg.AllowedLateness.Milliseconds()}) != features.Applied {
			continue
		}
		out = append(out, features.NewSnapshot(ev, u, st, &cfg, features.SnapshotSource{}))
	}
	if !until.IsZero() {
		emitTicks(until)
	}
	return out
}

var (
	reesOnce  sync.Once
	reesSnaps []features.Snapshot
)

// reesSnapshots are the snapshots of the bundled REES46 sample.
func reesSnapshots(tb testing.TB) []features.Snapshot {
	reesOnce.Do(func() { reesSnaps = buildSnapshots(readEvents(tb, source.REES46, data.REES46Sample), time.Time{}, nil) })
	return reesSnaps
}

func newRegistry(tb testing.TB) *registry.Registry {
	tb.Helper()
	b, err := registry.NewDirBackend(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	r, err := registry.New(registry.Config{Backend: b})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func newTrainer(tb testing.TB, cfg Config, reg *registry.Registry) *Trainer {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discardLogger
	}
	tr, err := New(cfg, reg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	if err := tr.Restore(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return tr
}

// feed processes snapshots in order on partition = user hash mod parts,
// with offsets counted per partition, and returns the (partition, offset)
// of each.
func feed(tb testing.TB, tr *Trainer, snaps []features.Snapshot, parts int, start map[int]int64) [][2]int64 {
	tb.Helper()
	ctx := context.Background()
	next := map[int]int64{}
	for p, o := range start {
		next[p] = o
	}
	locs := make([][2]int64, len(snaps))
	for i := range snaps {
		p := partitionOf(snaps[i].User, parts)
		locs[i] = [2]int64{int64(p), next[p]}
		if err := tr.ProcessSnapshot(ctx, p, next[p], &snaps[i]); err != nil {
			tb.Fatal(err)
		}
		next[p]++
	}
	return locs
}

func partitionOf(user string, parts int) int {
	return int(idHash(user) % uint64(parts))
}

// withFlush appends, for each of parts partitions, a view by a sentinel
// user far after the last snapshot, so that every partition's watermark
// passes every horizon up to after and all labels mature (time passes).
func withFlush(snaps []features.Snapshot, parts int, after time.Duration) []features.Snapshot {
	last := snaps[len(snaps)-1].TS
	out := append([]features.Snapshot(nil), snaps...)
	for p := 0; p < parts; p++ {
		for k := 0; ; k++ {
			u := fmt.Sprintf("flush-%d-%d", p, k)
			if partitionOf(u, parts) != p {
				continue
			}
			ts := last.Add(after)
			out = append(out, features.Snapshot{Version: 1, ID: u, User: u, TS: ts, Type: string(stream.TypeView),
				Features: map[string]float64{"last_seen": float64(ts.Unix())}})
			break
		}
	}
	return out
}
