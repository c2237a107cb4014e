// Package registry is streamprofile's model registry: numbered model
// versions with their weights, trainer state and prequential metrics; the
// champion (the version scorers serve); promotion and rollback; and hot
// swapping of the champion in running scorers.
//
// # Versions
//
// A Version is created by the trainer at every checkpoint (status
// candidate) with a monotonic number, its parent (the version it was
// fine-tuned from), the trainer's input offsets per partition, prequential
// metrics per task for the network and each baseline, the feature-schema
// hash (inputs.SchemaHash) and notes. Statuses: candidate → champion
// (Promote) → retired (another promoted) or rolled_back (Rollback); a
// candidate the promotion gate rejects, or that is superseded before it is
// evaluated, is retired. Exactly one version is champion once any is.
// Meta records the champion and the promotion history (each promotion and
// each rollback target appended), which is how Rollback finds "the previous
// good version": the most recent earlier champion not rolled back.
//
// # Storage
//
// A Backend stores versions durably. RedisBackend keeps a hash per version
// (its JSON, the model bytes and the trainer state), a sorted-set index and
// the meta record, all under the {models} hash tag so that a Redis Cluster
// keeps them in one slot and a WATCH/MULTI/EXEC transaction covers them;
// DirBackend keeps files in a directory, written atomically (temporary
// file, fsync, rename) under an flock(2) lock. Both serialise writers from
// several processes, so the `streamprofile model` CLI can promote or roll
// back while a trainer cuts versions.
//
// Versions are never deleted. Only the latest version's trainer state is
// resumed from; PruneStates lets the trainer rewrite the states of older
// versions once each (it strips their pending examples, which name users,
// when it cuts the next version), and Meta.StatesPrunedBelow records how
// far that got.
//
// # Announcements
//
// With Config.Announce set, every created or changed version is published
// to the compacted topic model-versions (key: the version number in
// decimal; value: the version JSON, without weights), best effort: the
// backend is the source of truth.
//
// # Hot swap
//
// A Champion holds an immutable *Served (version, weights, input encoder)
// in an atomic.Pointer. A Watcher polls the registry's meta record (one
// small read per interval, default 1s; Notify polls at once, for example on
// a model-versions message) and swaps in a new champion after loading and
// checking its weights; scorers call Champion.Load once per request and
// every Score carries the version that produced it. A champion whose schema
// hash differs from the scorer's is not loaded.
package registry
