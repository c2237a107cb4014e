// Package bench measures streamprofile against the machine's own limits, on
// the real stack (Kafka and Redis), in one run:
//
//  1. Floors. The rate at which a kafka-go reader per partition (the
//     pipeline's fetch settings) consumes a pre-loaded topic and decodes it
//     with stream.Decoder, doing nothing else; and the rate of pipelined
//     HSET/HINCRBY to the same Redis at the pipeline depth of a flush.
//  2. The real ingest pipeline (app.Ingester with its snapshot stage, the
//     production defaults) at maximum speed on the same pre-loaded topic:
//     events/s made durable in Redis and its ratio to the consume+decode
//     floor, Redis round trips per event (one per flush and one per
//     fetched batch: pipeline.Stats.RedisLoads, which loads the batch's
//     users not cached and checks all its users for an erasure) and
//     commands per event, CPU seconds per million events, peak RSS, Redis
//     used_memory per 100k users.
//  3. The score role's maximum: app.Scorer (its own process, on
//     Config.ScoreCPUs as in the latency runs, production defaults)
//     scoring the snapshot topic the maximum-speed run filled, from its
//     start at full speed: snapshots/s and CPU µs per snapshot. The
//     end-to-end maximum is min(ingester maximum, score role maximum);
//     without the score role (Config.NoScore) it is the ingester's.
//  4. Latency at fixed offered loads (fractions of the end-to-end maximum):
//     event append (Kafka record timestamp) → features durable in Redis (the
//     flush covering the event has returned; observed by a pipeline.Stage's
//     Flushed hook inside the ingester), and event append → the profile
//     snapshot emitted to profile-examples (the snapshot record's timestamp,
//     read by the load generator), and event append → the segment change or
//     retarget trigger the score role (app.Scorer, its own process, on the
//     measured side's CPUs by default: Config.ScoreCPUs) emitted for it,
//     matched by the header scorer.HeaderSourceEvent (the event id) and
//     read after the window; the events that caused any output are
//     counted. Outputs of timers carry no source event and are only
//     counted: of the default triggers, cart_abandonment,
//     browse_abandonment and win_back fire from timers, and price_drop,
//     the one an event causes, needs an item seen again at a lower price,
//     which the bundled sample never shows (Sample.RepricedItems; re-keying
//     keeps prices). So with the sample no event → trigger latency is
//     measured, and the report says so: the event → output latency is
//     event → segment change.
//  5. Trainer: examples/s of the configured network per batch size, the
//     trainer's snapshots/s end to end, and scoring µs per profile.
//  6. Scaling: every figure above for each requested number of distinct
//     users (10k, 100k, 1M by default), from the bundled REES46 sample
//     re-keyed by Rekey.
//  7. State following active users (Config.BoundedCacheUsers): the last
//     scale's maximum-speed run again with a small cache and a user TTL
//     shorter than the run (Config.BoundedTTL, 10s by default): the
//     ingester's peak RSS against the run with the default cache, and the
//     Redis user keys and used_memory at its end and again once the TTL
//     (plus a margin) has passed with no event, when no user is active and
//     no user key should be left.
//
// # Processes
//
// The coordinator (Run) starts workers as separate processes (RunWorker,
// reached through Config.WorkerCommand): the measured process (ingester,
// floors, trainer) and the load generator. With Config.IngestCPUs and
// Config.LoadCPUs (default: the last CPU for the measured side, the others
// for the load side) each is pinned with taskset(1), so the generator does
// not steal the measured process's CPU and Go sizes GOMAXPROCS to the pinned
// CPUs. Kafka and Redis are whatever Config.Brokers and Config.Redis point
// at, and are not pinned: scripts/bench.sh starts them on any CPU, as part
// of the system measured (on 2 CPUs, pinning them next to the load
// generator made the broker the bottleneck of every latency run).
//
// # Progress
//
// Config.Progress receives a line as each phase starts and, for the
// maximum-speed runs (ingester and score role) and the latency runs, the
// progress of the measured worker through internal/progress: a bar with
// rate and ETA when it is a terminal, a plain line every few seconds
// otherwise. The workers report their counts (records consumed, snapshots
// handled) on their result pipe.
//
// # Output
//
// Config.Document, when set (scripts/bench.sh: BENCHMARKS.md at the repository
// root), receives the report of a complete run: its date, the command, the
// machine, the placement of the processes, the re-keying, the plots and every
// table (Result.WriteDocument).
//
// Config.OutDir receives results.json (Result), results.md (the Markdown
// tables), the plots (throughput.png, latency.png, scaling.png) and, when a
// throughput target is missed (or Config.Profile is "always"), CPU and
// allocation profiles of a profiled re-run with their top functions.
//
// # Data
//
// Rekey maps every user of the REES46 sample (4,504 users, 17,434 events,
// 2h50m of event time) to synthetic users: copy k of the sample renames user
// u to "u-k" and shifts its event times by k × 3h, and copies follow each
// other, so each synthetic user keeps its events in their original order and
// the stream's event time only moves forward (nothing is late). The last
// copy keeps only as many users (in order of first appearance) as make the
// requested total. Further rounds repeat the same users with new event ids
// and later times, so a long run keeps exactly that many distinct users.
// Because copies follow each other, only about one copy's users are active
// at a time: the ingester's memory follows its per-partition LRU cache and
// Redis memory follows the users written within the TTL.
package bench
