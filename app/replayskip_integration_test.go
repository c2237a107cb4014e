package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamprofile/streamprofile/app"
	"github.com/streamprofile/streamprofile/features"
	"github.com/streamprofile/streamprofile/internal/testenv"
	"github.com/streamprofile/streamprofile/pipeline"
	"github.com/streamprofile/streamprofile/stream"
)

// A crash between a flush's user writes and its checkpoint write (on a
// Redis Cluster they are separate round trips, one per slot, then the
// checkpoint) leaves users stamped with offsets past their partition's
// checkpoint. The restarted ingester re-reads those records; the processor
// must skip each record its user's stamp covers, since the stored state
// already includes it.
//
// The test ingests three quarters of the sample, stops, moves every
// partition's checkpoint `next` halfway back (keeping its watermark: the
// crash lost only the checkpoint write), publishes the rest and restarts.
// The restarted ingester must skip exactly the rewound records, apply
// exactly the new ones, and leave every profile equal to the batch
// recomputation.
//
// De-duplication by event id would also hide most of such a replay, but
// only within its retention (7 days, 4096 ids per user); past it the stamps
// alone keep the replay exactly once. The ingester here remembers one event
// id per user, and its allowed lateness (6h) spans the sample (3h), so the
// rewound records are neither duplicates nor late: without the skip they
// are applied again. The write script refuses a state whose stamp is not
// newer than the stored one, so flushes fail as fenced and partitions
// restart from their checkpoints over and over (with the skip disabled,
// neither variant caught up within the 2-minute wait), and a user whose
// replayed and new events share a flush is written with the replay counted
// twice.
func TestRestartSkipsRecordsTheStampsCover(t *testing.T) {
	e := newEnv(t, 4)
	opts := e.rdb.Options()
	replaySkip(t, e.brokers, e.topic, e.rdb, app.RedisConfig{Addr: opts.Addr, DB: opts.DB}, e.prefix)
}

// The same on the Redis Cluster, where a flush's user writes and its
// checkpoint really are separate round trips.
func TestRestartSkipsRecordsTheStampsCoverOnRedisCluster(t *testing.T) {
	nodes := testenv.RedisCluster(t)
	cc, prefix := testenv.RedisClusterClient(t)
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, brokers, 4)
	if err := stream.EnsureTopics(context.Background(), brokers, stream.TopicSpec{Name: topic + ".dlq", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	replaySkip(t, brokers, topic, cc, app.RedisConfig{Cluster: nodes}, strings.TrimSuffix(prefix, ":"))
}

func replaySkip(t *testing.T, brokers []string, topic string, rdb redis.UniversalClient, rc app.RedisConfig, prefix string) {
	const partitions = 4
	group := "g-" + topic
	store, err := features.NewStore(rdb, features.StoreConfig{Prefix: prefix, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.IngestConfig{
		Brokers: brokers, Group: group, SessionTimeout: 6 * time.Second,
		Redis: rc,
		Store: features.StoreConfig{Prefix: prefix},
		Pipeline: pipeline.Config{Topic: topic, FlushInterval: 5 * time.Millisecond, FlushEvents: 200,
			Features: features.Config{MaxDedupeIDs: 1, AllowedLateness: 6 * time.Hour}},
		SnapshotTopic: "-",
	}
	caughtUp := func(in *app.Ingester) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := app.WaitCaughtUp(ctx, brokers, topic, store, 20*time.Millisecond); err != nil {
			lag, _ := app.Lag(context.Background(), brokers, topic, store)
			st := in.Topology().Stats()
			t.Fatalf("not caught up: %v (lag %v; consumed %d, replay-skipped %d, applied %d, duplicates %d)",
				err, lag, st.Consumed.Load(), st.Replayed.Load(), st.Applied.Load(), st.Duplicates.Load())
		}
	}
	recs := sampleRecords(t)
	split := len(recs) * 3 / 4
	ctx := context.Background()

	publish(t, brokers, topic, recs[:split])
	first, stop := runIngester(t, cfg, "first ingester", nil)
	caughtUp(first)
	stop()
	if got := first.Topology().Stats().Applied.Load(); got != int64(split) {
		t.Fatalf("first run applied %d events, want %d", got, split)
	}

	// The crash: each partition's last checkpoint writes were lost, the
	// users' states and stamps were not.
	var rewound int64
	for p := 0; p < partitions; p++ {
		cp, err := store.LoadCheckpoint(ctx, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Next <= 0 || cp.Watermark <= 0 {
			t.Fatalf("partition %d: checkpoint %+v after the first run", p, cp)
		}
		back := cp.Next / 2
		if err := rdb.HSet(ctx, store.CheckpointKey(topic, p), "next", back).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := store.LoadCheckpoint(ctx, topic, p); err != nil || got != (features.Checkpoint{Next: back, Watermark: cp.Watermark}) {
			t.Fatalf("partition %d: rewound checkpoint reads %+v, %v", p, got, err)
		}
		rewound += cp.Next - back
	}

	publish(t, brokers, topic, recs[split:])
	second, stop := runIngester(t, cfg, "restarted ingester", nil)
	caughtUp(second)
	stop()
	st := second.Topology().Stats()
	t.Logf("restart: consumed %d, replay-skipped %d, applied %d, duplicates %d", st.Consumed.Load(), st.Replayed.Load(), st.Applied.Load(), st.Duplicates.Load())
	if got := st.Replayed.Load(); got != rewound {
		t.Errorf("restart skipped %d records as replayed, want the %d rewound ones", got, rewound)
	}
	if got, want := st.Applied.Load(), int64(len(recs)-split); got != want {
		t.Errorf("restart applied %d events, want the %d new ones", got, want)
	}
	if got := st.Duplicates.Load() + st.DeadLetter.Load(); got != 0 {
		t.Errorf("restart dropped %d records as duplicates or dead letters, want 0", got)
	}
	evs, last := events(recs)
	assertStoreEqualsBatch(t, store, evs, last)
}
