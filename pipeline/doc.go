// Package pipeline declares the processing topology in one place: which
// topics are read and written, and what happens to each record between the
// clickstream and the feature store.
//
//	clickstream ─► decode+validate ─► key check ─► replay skip (per-user offset stamp)
//	    ─► dedupe (event id) ─► lateness (partition watermark) ─► features.Apply ─► stages
//	    bad/late records ─► clickstream.dlq
//	flush (size or time): emitted records acknowledged by Kafka, then every dirty user's
//	state + its offset stamp + the partition checkpoint in one Redis round trip.
//
// A processor owns one partition. Its state (user cache, watermark, pending
// flush) is touched only by its goroutine. Any failure drops that state and
// the processor restarts from the checkpoint stored in Redis; the per-user
// stamps make the replayed prefix a no-op, so the effect is exactly once.
//
// Observability (Config.Tracer, Config.Metrics; both off by default, at no
// cost): each record's consume span continues the trace in its headers
// (or starts a sampled root) with decode, dedupe, feature_update and score
// children; every record the event causes — dead letter, stage output,
// forwarded identify, merge record — gets an emit span whose context is
// injected into its headers, named by StageOutputs (a stage's triggers
// are "trigger"); each flush is a redis_flush span linked to the events it
// makes durable, and observes their end-to-end latencies
// (observability.Batch). The processor reports its lag per batch
// (stream.Feed.Processed).
package pipeline
