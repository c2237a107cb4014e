// Package observability gives streamprofile its traces, metrics, admin
// endpoints and logs: OpenTelemetry tracing carried through Kafka headers,
// Prometheus metrics, an admin HTTP server and PII-free structured logging.
//
// # Tracing
//
// SetupTracing builds the tracer provider from the standard OTEL_*
// environment variables only (OTEL_TRACES_EXPORTER=otlp|console|none, default
// none; OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=grpc|http/protobuf; endpoints and
// headers read by the exporters; OTEL_TRACES_SAMPLER[_ARG] read by the SDK;
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). With tracing off the provider
// is a no-op and Tracer's methods return at once without touching headers.
//
// Trace context travels in Kafka record headers (W3C traceparent and
// tracestate, and W3C baggage) through KafkaCarrier, InjectHeaders and
// ExtractHeaders. Every consumed record gets a consumer span, "process
// clickstream", whose parent is the producer's span when the record carries
// one (a replayed click continues the replay tool's trace), else a new root
// sampled by the configured ratio. Its children are the pipeline's steps:
// decode, dedupe, feature_update, score, and emit — the producer span of
// each record the event causes (a trigger, a score, a dead letter), whose
// context is injected into that record's headers, so the consumers of
// triggers continue the same trace. An emit span ends when Kafka has
// acknowledged its record, which happens in the partition's next flush. Each
// flush is one redis_flush span that links to every sampled event span it
// makes durable and is the child of the first of them. Attribute names follow
// the OTel messaging conventions (messaging.system=kafka,
// messaging.destination.name, messaging.destination.partition.id,
// messaging.kafka.offset, messaging.operation.type); user ids and message
// keys are never recorded, and error texts are redacted.
//
// Batch is the per-partition bookkeeping that ties these together with the
// latency metrics; see its methods for where the pipeline calls them.
//
// # Metrics
//
// NewMetrics registers every streamprofile_* metric on a registry the caller
// owns; see Metrics for the list, which is exactly the contract of
// deploy/METRICS.md (names, types, labels and closed label values). Counters the pipeline keeps anyway
// (pipeline.Stats) are exported at scrape time by RegisterPipeline, the
// consumer lag by RegisterLag, so neither adds work to the hot path.
// Latencies are histograms with buckets from 0.5ms to 10s, and an
// observation made for a sampled event carries its trace id as an exemplar.
//
// # Admin server
//
// AdminServer serves /metrics, /healthz (liveness), /readyz (named readiness
// checks, 503 with a JSON body naming the failing ones) and /debug/pprof/ on
// its own mux.
//
// # Logging
//
// NewLogger builds a text or JSON slog.Logger whose handler is wrapped by
// NewRedactHandler: values under keys such as user_id, anonymous_id, email
// and ip are masked, and so is anything that looks like an e-mail or IP
// address in any message or value.
//
// # Why was this trigger late?
//
// Triggers carry their trace context in their headers. Take the trigger's
// traceparent (or search the tracing backend by the trigger's attributes) and
// open the trace. Its root is the span of whoever produced the click (the
// replay tool, when replaying), then:
//
//	process clickstream   starts when the partition processor took the record;
//	                      start − streamprofile.ingest_time_ms is the time the
//	                      record waited in Kafka and in the fetch queue (consumer lag)
//	  decode, dedupe, feature_update, score   the processing itself
//	  emit                starts when the trigger was built, ends when Kafka
//	                      acknowledged it: a long emit is the wait for the flush
//	                      (FlushInterval, FlushEvents) plus the send
//	  redis_flush         (in this trace or linked to it) the flush that sent the
//	                      trigger and wrote the state; its duration, users and
//	                      commands show a slow or oversized flush
//
// So a late trigger is late because of one of: the record arrived late
// (event time streamprofile.event_time_ms long before ingest time: the
// client), it queued (a gap before process: lag), processing was slow (the
// step spans), or the flush was (emit and redis_flush). Traces are sampled;
// to find one for a slow trigger, open an exemplar of a high bucket of
// streamprofile_e2e_latency_seconds{stage="ingest",output="trigger"} in Grafana: it
// holds the trace id.
//
// # Is the pipeline keeping up?
//
//   - streamprofile_consumer_lag{topic,partition}: records behind the high
//     watermark. Flat or falling is keeping up; rising on every partition
//     means too little throughput (scale out, up to the partition count);
//     rising on one partition means a hot key or a stuck processor.
//   - histogram_quantile(0.99, sum by (le, output)
//     (rate(streamprofile_e2e_latency_seconds_bucket{stage="ingest"}[5m]))): the
//     pipeline's end-to-end p99 from Kafka append to durable profile
//     (output="profile") or acknowledged trigger. It should stay near
//     FlushInterval plus the flush duration; growth with growing lag is
//     backlog, growth without lag is slow flushes
//     (streamprofile_redis_flush_seconds, streamprofile_redis_flush_users).
//   - rate(streamprofile_events_consumed_total[5m]) against the producers'
//     rate, and rate(streamprofile_events_dead_lettered_total[5m]) by reason
//     for bad input.
//   - stage="event" of streamprofile_e2e_latency_seconds adds the clients'
//     own delay (event time to Kafka); it is meaningless while replaying old
//     data.
//   - /readyz with LagCheck turns "caught up" into a readiness condition.
package observability
