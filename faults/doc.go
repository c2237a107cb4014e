// Package faults is streamprofile's fault suite: end-to-end tests that run
// the ingest (train, score) role as separate processes against the real Kafka
// broker and Redis servers of scripts/testenv.sh, inject a fault, and check
// the outcome against references that share no code with the pipeline.
//
// The package holds no library code; everything is in its tests.
//
// # Running
//
//	scripts/faults.sh
//
// starts the services (scripts/testenv.sh up), runs
//
//	go test -tags faults -count=1 -timeout 45m ./faults/...
//
// with STREAMPROFILE_FAULTS_RESULTS pointing at faults/RESULTS.md, and stops
// the services again. Without the build tag `faults` only the quick case
// (TestRedisRestartMidStream, seconds) is compiled, so `scripts/test.sh`
// runs that one and nothing slow. The suite runs without -race: it reports
// memory and throughput, which the race detector inflates several times.
//
// # What every case checks
//
// Each case publishes the bundled REES46 sample (data.REES46Sample, through
// stream/source; some cases a re-keyed larger copy of it) to a topic of its
// own, runs one or more ingester processes (the test binary re-executed as
// a child, see TestMain) and injects its fault. When the ingesters have
// caught up it compares
//
//   - every stored profile with features/featurestest's batch recomputation
//     over the good events: "events lost" and "duplicates applied" are the
//     event counters (views, carts, purchases, ...) the stored profiles
//     miss or hold in excess, summed over users, and must both be 0;
//   - the dead-letter topic with the injected bad records: every one there,
//     with the reason it was injected for, and nothing else;
//   - the profile-examples topic with the applied events: one snapshot id
//     per event, and any repeat (at-least-once output after a crash)
//     byte-identical to its first copy.
//
// It records what was injected, how long the pipeline took to make progress
// again after the fault ("recovered in"), the events lost and applied twice,
// and the peak resident memory (VmHWM) of the ingester processes.
// TestMain writes these rows, and the series of the burst and soak cases and
// the scale-out throughput, to RESULTS.md when STREAMPROFILE_FAULTS_RESULTS
// names it.
//
// # The cases
//
//   - TestIngesterSIGKILL: two ingesters SIGKILLed at random moments,
//     repeatedly, and restarted.
//   - TestTrainerSIGKILL: the trainer SIGKILLed repeatedly while it learns
//     from the examples the ingester produced; every example learnt once.
//   - TestScorerSIGKILL: the score role (app.Scorer) SIGKILLed at random
//     moments, repeatedly, and restarted; its changes, triggers and
//     memberships compared with an uninterrupted scorer's.
//   - TestKafkaRestartMidStream: the broker stopped and started again.
//   - TestRedisRestartMidStream: redis-server (append-only file on)
//     restarted mid-stream.
//   - TestRedisKilledMidStream: redis-server SIGKILLed mid-stream and
//     started again on its append-only file.
//   - TestSlowRedis: CLIENT PAUSE for 2, 4 and 6 s against a 300 ms Redis
//     timeout: timeouts, retries, partition restarts, backpressure.
//   - TestPoisonAtHighRate: half of the records are bad, of every kind.
//   - TestBurst: ten times the normal rate for a while; lag and memory.
//   - TestSoak: ten minutes of a bounded set of users cycling through TTL
//     expiry; RSS and Redis used_memory over time.
//   - TestScaleOutThroughput: events/s of 1, 2 and 3 ingester processes on
//     the Redis Cluster.
package faults
