// Package trainer learns streamprofile's multi-task network continuously
// from the profile snapshots the ingester publishes (topic
// profile-examples), evaluates it prequentially against the champion and
// baselines, cuts versions into the model registry, promotes challengers
// that pass a gate and rolls back champions that degrade.
//
// # Examples and labels
//
// Every snapshot (features.Snapshot: the user's profile right after one
// event, evaluated at the event's time) can become up to two examples:
//
//   - purchase_propensity: P(the same user purchases within H after the
//     event), H = Config.PurchaseHorizon (default 30m). Label 1 when a
//     purchase snapshot of the user with event time in (t, t+H] arrives.
//   - repeat_purchase_90d: P(the customer buys again on a later UTC day
//     within D), D = Config.RepeatHorizon (default 90 days); churn risk is
//     its complement. Only for customers (purchase_days ≥ 1), only at
//     purchase snapshots (Config.RepeatExamples "purchase"; "all" allows
//     any snapshot) and at most one pending per user per UTC day.
//
// A label is negative once the horizon has passed in event time: each input
// partition has a watermark, its largest event time minus
// Config.AllowedLateness (default 10m, the ingester's), and an example
// whose t+horizon is below it can no longer receive its label event (the
// ingester drops events behind its watermark; a user's snapshots are in one
// partition, in event order modulo the lateness). Positives are known as
// soon as the label event arrives.
//
// A snapshot made from a late event (its profile already holds a later
// event: last_seen > its time) is not an example: its features contain
// the future. It still serves as a label event. Re-published snapshots
// (same id, after an ingester crash) are dropped by a bounded FIFO of
// 64-bit id hashes (Config.DedupeSize).
//
// A consent event's snapshot (features.Snapshot.IsConsent: consent flags,
// no profile) is neither an example nor a label, and does not move the
// watermark; it is counted (Stats.ConsentSnapshots). One that withdraws
// profiling drops the user's pending and matured-not-learnt examples and
// customer summary, as an erasure does (Trainer.Forget): the ingester
// applies none of the user's events from then on, so those examples could
// only mature as negatives, and their features are what the user
// withdrew.
//
// # Prequential evaluation and training
//
// When a snapshot arrives, before anything about its outcome can be
// known, it is scored by every model: the network's latest checkpoint
// ("network"), the challenger under evaluation, the registry's champion,
// and the baselines. The scores are kept with the pending example. When the
// label matures the example is (1) evaluated: its arrival scores and label
// enter each model's prequential window (metrics.Prequential), (2) learnt
// by the online baselines, and (3) queued for the network's next
// micro-batch (Config.BatchSize examples or Config.BatchInterval, whichever
// comes first). Nothing trains on an example before its label has matured,
// and no score is made after its example was learnt: the metrics are
// honest out-of-sample estimates. TestNeverTrainsBeforeMaturity checks
// every learnt example against an independent computation of when its
// label became known; TestShuffledLabelsGiveChanceAUC checks that labels
// independent of the features give chance AUC.
//
// # Delayed feedback
//
// Positives mature early (when the purchase arrives), negatives only when
// the horizon has passed, so at any moment the matured examples
// over-represent positives, and the freshest H + lateness of data has only
// positives. This trainer accepts the delay rather than correct for it: it
// trains only on matured examples (a negative is learnt H + lateness after
// its event, so the network lags the present by that much: with H = 30m a
// regime change shows in the weights after about 40 minutes), and it feeds
// the metrics in arrival order (each task's examples wait in an arrival
// queue until all older ones have matured), so that windows are not
// skewed towards early-maturing positives. The alternatives, learning
// provisional negatives and correcting them (fake negatives with importance
// weighting) or modelling the delay, would learn faster but train on labels
// that later change. Pending memory is bounded (Config.MaxPending, per
// task; the oldest are dropped and counted); so is the arrival queue.
//
// A finite input (a replay, a backfill) ends with examples whose horizon
// never passes, since no later event comes: Trainer.AdvanceTime declares
// the input over and matures them as time passing would (the demo calls
// it after its replay).
//
// # Baselines
//
// All score the same examples at arrival:
//
//   - recency: a hand-set logistic of log1p-transformed recency and
//     frequency. Purchase: σ(−3 + ln(1+activity_1h) + ln(1+carts_24h) +
//     0.5 ln(1+purchases_total) − ln(1+days_since_last_seen)). Repeat:
//     σ(−1 + ln(1+repeat_transactions) + 0.5 ln(1+activity_7d) −
//     0.5 ln(1+days_since_last_purchase)).
//   - logistic: online logistic regression, one SGD step per matured
//     example, on the network's numeric transform (log1p squash, running
//     standardisation of its own: an input whose variance is below 1e-4
//     reads 0, the others are clipped to ±3), with a step size decaying as
//     1/√(1+n) and a faster bias, Config.Logistic. Labels mature in
//     one-class bursts (positives early, negatives together when the
//     horizon passes); a constant step chased the bursts (prequential AUC
//     below chance on both real datasets), the decaying one does not.
//   - bgnbd (repeat task): BG/NBD fitted by maximum likelihood
//     (clv.FitBGNBD) every Config.BGNBD.RefitExamples new customer
//     summaries or RefitInterval, over the latest summary of up to
//     MaxCustomers customers (x = repeat_transactions, t_x = recency_weeks,
//     first purchase day from age_weeks), each aged to the newest event
//     time. A snapshot scores P(purchase within D) ≈ 1 − exp(−E[Y(D)]), a
//     Poisson approximation of the BG/NBD count. Gamma-Gamma is fitted
//     alongside; the parameters are stored in each version (Version.CLV)
//     so that scorers can report p_alive, expected purchases and CLV
//     (CustomerValue).
//
// # Versions, the gate and rollback
//
// Every Config.CheckpointBatches batches or CheckpointInterval (with
// something trained) the trainer trains what has matured and cuts a version
// (registry.Create): weights, offsets, metrics, schema hash, BG/NBD
// parameters and the trainer state. A candidate becomes the challenger:
// it scores new snapshots alongside the champion until Gate.Examples of
// them have matured for a task; then each task with at least
// Gate.MinExamples and both classes is judged on the same examples:
// promoted if AUC ≥ champion AUC − AUCMargin and log loss ≤ champion log
// loss + LogLossMargin on every judged task, else retired with the reason
// (with no champion: AUC ≥ 0.5 + AUCMargin). Candidates cut meanwhile wait;
// the newest becomes the next challenger and the others are retired as
// superseded. The champion's own live scores fill a window of Gate.Examples;
// when its AUC is below the previous good champion's recorded AUC (its live
// window, else its gate window) by more than AUCMargin it is rolled back
// (registry.RollbackFrom). The trainer follows promotions and rollbacks
// made by the CLI (polling, Config.ChampionPoll). Rollback changes the
// served model only; the training lineage continues, and its candidates
// must pass the gate again.
//
// # Restarts
//
// A version's trainer state holds, per partition, the next offset consumed
// and the pending examples: short-horizon ones (only the purchase task
// open) as (offset, tasks) pairs, to be rebuilt by replaying the input from
// the oldest of them (its replay_from offset); long-horizon ones (the
// repeat task open) whole, inline (inputs, arrival scores, deadlines), so
// that a restart never replays months of input. It also holds the dedupe
// hashes, the logistic baselines, the counters and, with
// Config.AuditTrained, the ids learnt since the parent version. On start
// the trainer loads the latest version's weights (fine-tuning continues
// with fresh optimiser state) and state; each partition resumes at its
// replay_from; messages below the stored next offset re-create only the
// listed pending examples (and serve as label events), so every example is
// learnt exactly once across crashes (TestRestartNeitherLosesNorRepeats;
// app's SIGKILL test). Metrics windows and the challenger's gate window
// start empty after a restart; re-created examples are re-scored with the
// restored models. A latest version with another feature schema (the
// architecture changed) restores the input positions but trains a new
// network from scratch.
//
// One trainer should consume the topic: the consumer group is used for
// offsets and failover, and a second member would train a second lineage
// on half of the partitions.
//
// # Performance
//
// go test -bench on the shared 2-core development machine (loaded by other
// work; pessimistic), default inputs (39 numeric features, 3 token fields,
// 256 buckets), hidden [16]:
//
//	BenchmarkProcess      ~50k snapshots/s end to end (scoring by network,
//	                      challenger and baselines, labels, pending,
//	                      micro-batches of 128, checkpoints): ~20 µs each
//	BenchmarkTrainBatch   ~120k examples/s (one 128-example step ~1 ms)
//	inputs.BenchmarkScoreSnapshot  ~2 µs per score (encode + Predict,
//	                      default arch, 0 allocations)
//
// Rerun `go test -run XXX -bench . ./model/trainer ./model/inputs`.
package trainer
