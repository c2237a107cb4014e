// Package scorer is the score role's core: it consumes the profile
// snapshots the ingester publishes (topic profile-examples, one
// features.Snapshot per applied behavioural or consent event, keyed by
// user), scores them with the champion model, evaluates the segment catalogue (package segment) and
// emits segment changes (topic segment-changes) and retargeting triggers
// (topic retarget), both keyed by user. Message formats are the JSON
// Schemas schema/segment-changes-v1.schema.json and
// schema/retarget-v1.schema.json; SegmentChange and Trigger are the Go
// types.
//
// # Scores and explanations
//
// Each snapshot is scored with the champion held by a registry.Champion
// (kept current by a registry.Watcher): purchase_propensity and
// repeat_purchase_90d from the network, churn_risk = 1 − repeat, and from
// the version's fitted BG/NBD and Gamma-Gamma parameters p_alive,
// expected_purchases_90d and clv_90d (for users who bought). Every score is
// stamped with the model version. The scores feed one decile sketch each
// (segment.Sketches) for decile(...) rules; sketches live in memory and
// start empty after a restart (decile rules are Unknown until 1000 scores
// are seen).
//
// The explanation of a network score lists its top inputs (ExplainTop,
// default 5; -1 turns explanations off)
// with signed contributions: the score minus the score with that input
// absent from the snapshot (a numeric feature at 0, a token field empty),
// and a readable Label. It is occlusion, exactly what nn.Model.Explain
// computes against the all-absent baseline, but only for the inputs that
// are present (an absent input contributes 0): one forward pass per
// present input. Removing an input from the snapshot changes the score by
// exactly its contribution (TestExplanationIsFaithful checks this through
// Score on real snapshots). It is computed lazily: once per user per
// flush, and when a trigger needs it, rather than once per snapshot.
//
// Explanations are made of snapshot features, not of network inputs. The
// derived BG/NBD inputs (inputs.DerivedInputs) are not in the snapshot, so
// they cannot be removed from it, and removing one of the summary features
// they are computed from (inputs.SummaryFeatures: purchase_days,
// repeat_transactions, recency_weeks, age_weeks, repeat_avg_value) changes
// them too. So a summary feature is occluded as its removal from the
// snapshot would: its own input at 0 and the derived inputs at what the
// encoder computes without it (inputs.Encoder.DerivedWithout), and the
// derived inputs are never entries of their own: their effect is
// attributed to the summary features they come from. Zeroing a derived
// input alone would describe a profile that cannot exist, and zeroing a
// summary feature alone would leave the explanation unfaithful to the
// score of the snapshot without it. The example's summary (5 numbers,
// inputs.SummaryOf) is kept with the user's pending example at scoring
// time, so the explanation needs no snapshot; it costs at most 4 BG/NBD
// evaluations per explained customer (removing purchase_days makes a
// non-customer, whose derived inputs are 0 without computing them) and
// none for a user who never bought. Its contributions therefore need not
// match nn.Model.Explain for the summary features
// (TestSparseExplainIsModelExplain checks both parts).
//
// # Performance
//
// go test -bench Snapshot on the shared 2-core development machine (load
// average 6-40 from other work, so pessimistic), default architecture,
// default catalogue, REES46 snapshots, per snapshot through the engine
// (score, segments, triggers, timers; no I/O): about 18-22 µs without
// explanations, 46-58 µs explaining at every flush of 500 snapshots (what
// the processor does), 62-80 µs explaining every snapshot. Decoding a
// snapshot's JSON (features.DecodeSnapshot, encoding/json) costs about as
// much again.
//
// The latest scores of a user are stored in the hash
// `<prefix>:{<user>}:scores`: field = score name, value =
// "<value>|<model version>|<feature>:<contribution>,…" (contributions only
// for the network's scores; churn_risk's are repeat's, negated).
//
// # Segments
//
// The catalogue (segment.Default, or a file hot-reloaded by
// segment.Watcher) is evaluated for every snapshot at the event's time on
// the snapshot's features, affinities and scores; the membership is stored
// in `<prefix>:{<user>}:seg` (segment.Membership's binary encoding), and
// each segment's members in the set `<prefix>:segidx:{<segment>}`
// (Members pages through it with SSCAN, Segments counts it). Every change
// is emitted with the deciding rule and the values it saw, and a
// deterministic event_id (ChangeID: user, segment, change, time).
//
// # Timers
//
// Some changes need no event: a user becomes silent after 7 days without
// one. After each evaluation the scorer computes the user's next due time,
// the earliest of segment.Catalogue.NextCheck (time-relative rules and
// min_dwell), an open cart (last cart + Triggers.CartAfter), high-intent
// browsing (last event + BrowseIdle), win-back (last activity +
// WinBackIdle, for valuable customers) and retention (last event +
// Retention). It is stored in the user's state and in the partition's
// sorted set `<prefix>:timers:{<group>}:<topic>:<partition>`, so timers
// survive restarts.
//
// Each partition has a clock in event time: its newest snapshot time
// minus Lateness, advanced with processing time (wall time since the last
// record) once the partition has been idle for IdleAfter, so timers fire
// when no events arrive at all. After each flush the processor fires the
// timers due at its clock: the user is evaluated as of the due time on its
// last snapshot projected forward (clocks such as days_since_last_seen
// advance, activity decays, windowed counts are zero once their window has
// passed; network scores are held, the baselines are recomputed). A timer
// due before the user's next event fires before that event is applied, so
// a user's changes do not depend on when timers are scanned (with Lateness
// at least the ingester's allowed lateness, no snapshot is older than the
// clock; TestEngineIndependentOfBatching).
//
// # Triggers
//
// Kinds: cart_abandonment (a cart without purchase within CartAfter of
// event time), browse_abandonment (views with purchase_propensity ≥
// BrowseIntent and no cart, then BrowseIdle of inactivity), win_back (a
// customer with WinBackMinPurchases purchases and WinBackMinRevenue
// revenue, inactive for WinBackIdle, with churn_risk ≥ WinBackChurn, or
// 1 − p_alive without a network score) and price_drop (an item the user
// viewed is observed, in any user's event of the partition, at a price
// PriceDrop below what the user saw). Each carries a priority, an expiry,
// a dedupe key naming the occasion, channel hints, the model version and
// score, the explanation, and recommended items and categories: the
// occasion's own items, items co-viewed with the user's, popular items of
// the user's top categories, popular items overall, never an item in the
// user's purchased set (the last 64 bought). Item statistics (decayed
// popularity, co-occurrence, last prices and price watchers) are learnt
// per partition and bounded (ItemsConfig); they are saved with the
// checkpoint every SaveInterval and relearnt from there after a restart.
// The table is a function of the snapshots in offset order: a view's
// co-occurrences are with the items its snapshot lists as viewed before it
// (features.Snapshot.Recent, version 2), not with the scorer's own state
// of the user, so records relearnt after a restart teach exactly what they
// taught the first time, and a restarted scorer recommends what an
// uninterrupted one does. (Version 1 snapshots fall back to the user's
// recent items where the user is applied, and teach no co-occurrence when
// relearnt.)
//
// A trigger is suppressed, and counted by reason, when the user's ads
// consent is withdrawn (consent: see Consent), within Quiet after the
// user's last purchase (quiet), when the partition clock has passed its
// expiry (expired), or beyond MaxPerDay of its kind for the user on the
// UTC day (cap).
//
// # Consent
//
// The ingester publishes a snapshot for every consent event too
// (features.Snapshot.IsConsent): the user's consent flags after it, no
// profile. It is not scored and evaluates no segment (Stats.Consent counts
// it, not Stats.Snapshots), and it teaches the item table nothing; a timer
// of the user due before it fires first, as before any snapshot.
//
//   - Ads: the user's AdsOff becomes the snapshot's, in both directions.
//     Most triggers fire from timers (cart and browse abandonment, win-back)
//     with no snapshot in between, so a withdrawal must not wait for the
//     user's next behavioural snapshot: from the consent snapshot on, every
//     trigger of the user is suppressed (reason consent), until a consent
//     snapshot re-grants ads; an occasion still open then (a cart not yet
//     abandoned long enough) triggers as usual.
//   - Profiling: the ingester applies none of the user's behavioural
//     events any more and has erased the derived features; the scorer
//     forgets the user as the end of retention does: an exit from every
//     segment (cause consent, note "consent: profiling withdrawn",
//     snapshot_id the consent event's), no timer, no watched item, and the
//     user's keys deleted at the flush (Stats.Withdrawn). Nothing about the
//     user is emitted after that unless a re-grant brings new snapshots,
//     which start a new user.
//
// A replayed consent snapshot is skipped by the stamp like any other
// (Exactly once in effect); the stamp of a forgotten user survives its
// keys, so replayed records of the user are not applied to a new one.
//
// # Exactly once in effect
//
// The design is the ingester's (DESIGN.md). One processor per assigned
// partition owns its users' cached state; a flush (FlushEvents snapshots
// or FlushInterval) first sends the pending messages and waits for Kafka's
// acknowledgement, then writes every changed user with one Lua script per
// user (membership, scores and state, refused when the stored stamp is not
// older, or the user is erased), then, in one MULTI/EXEC on a standalone
// server, the index and timer entries and the partition checkpoint (next
// offset, clock, and now and then the item table). Each user's state
// carries a stamp (the offset of the partition's last record applied to
// it, and the number of timer evaluations since), so a restarted processor
// skips what a user already has and re-asserts its index and timer
// entries; records below the checkpoint only rebuild the item table. A
// crash between the acknowledgement of the messages and the user writes
// (the replay window) repeats those messages with the same event_id and
// trigger_id; nothing else is emitted twice, and nothing is lost.
//
// # Redis keys
//
//	<prefix>:{<user>}:seg      string  segment.Membership binary
//	<prefix>:{<user>}:scores   hash    latest scores (above)
//	<prefix>:{<user>}:timer    hash    s: scorer state (binary, versioned);
//	                                   o:<topic>:<p>, q:<topic>:<p>: stamp;
//	                                   due: next timer (unix ms)
//	<prefix>:segidx:{<segment>}               set    the segment's members
//	<prefix>:timers:{<group>}:<topic>:<p>     zset   user → due (unix ms)
//	<prefix>:timers:{<group>}                 set    the partitions' timer sets
//	<prefix>:ckpt:{<group>}:<topic>:<p>       hash   next, wm (clock), items,
//	                                                 items_next
//
// The per-user keys expire TTL after their last write and are deleted when
// the user's Retention passes or the user withdraws profiling consent (the
// user then leaves every segment); only the stamp fields of the timer
// hash are kept, until the TTL, so that a replay does not apply the user's
// records again.
//
// # Erasure
//
// Forget drops erased users: their keys, index and timer entries, their
// entries in the partitions' item tables (the processors save their tables
// without them before Forget returns), while the write script refuses
// state for a user whose erasure marker exists.
//
// # Observability
//
// With Config.Tracer, each snapshot is handled in a consume span that
// continues the ingester's trace from the record's headers, and every
// change and trigger the snapshot causes (a price drop for another user
// included) gets an emit span whose context travels in its record's
// headers, so one trace runs from the click to the trigger; changes and
// triggers of timers start none. A redis_flush span, linked to the
// consume spans it makes durable, covers each flush, and the emit spans
// end with it. With Config.Metrics, the ingest → emit and event → emit
// latency of every event-caused change (output OutputSegmentChange) and
// trigger (observability.OutputTrigger) is observed once Kafka
// acknowledged it. Counters (Stats) are not duplicated on the hot path:
// the score role exports them periodically.
package scorer
