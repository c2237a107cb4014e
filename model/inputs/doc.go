// Package inputs turns a profile snapshot (features.Snapshot) into the
// network's input row (nn.Example). It is the one place where the trainer
// and the scorer agree on the model's inputs, so that a model is always
// scored on exactly the inputs it was trained on.
//
// # Numeric inputs
//
// Arch.NumericFeatures names snapshot features (features.Defs); a name the
// snapshot lacks reads 0. DefaultNumericFeatures lists every feature of
// features.Defs except the raw timestamps first_seen, last_seen and
// last_purchase_at: absolute times do not generalise across time and would
// let the network memorise the calendar. Their relative forms
// (days_since_last_seen, days_since_last_purchase, tenure_days) stay.
//
// # Derived inputs
//
// DerivedInputs (bgnbd_defined, bgnbd_p_alive,
// bgnbd_expected_purchases_90d, bgnbd_clv_90d) are numeric inputs computed
// from the snapshot's purchase summary (CustomerOf) with the BG/NBD and
// Gamma-Gamma fit bound by Encoder.WithFit: the trainer binds the fit in
// force when a snapshot arrives (never a later one), a served version the
// fit stored with it (registry.Version.CLV). Without a fit, or for a
// non-customer, they read 0 and bgnbd_defined is 0. DefaultArch lists
// them after DefaultNumericFeatures, so the classical baselines are
// features of the network too.
//
// They depend on a snapshot only through its Summary (SummaryOf): the
// values of the SummaryFeatures purchase_days, repeat_transactions,
// recency_weeks, age_weeks and repeat_avg_value. Removing one of those
// from a snapshot changes its own input and the derived ones;
// Encoder.DerivedWithout computes the derived slots' values for that
// snapshot, so that an explanation by occlusion (sink/scorer) stays
// faithful at the level of snapshot features.
//
// # Token inputs
//
// Each token field (Arch.TokenFields, default category, brand and term) is
// read from Snapshot.Tokens under the same name; each token is hashed with
// 32-bit murmur3 (github.com/twmb/murmur3, seed 0) of its UTF-8 bytes,
// modulo Arch.HashBuckets. A field the snapshot lacks is an empty bag.
//
// # Schema hash
//
// SchemaHash fingerprints everything that fixes the meaning of a model's
// inputs and outputs: the numeric feature names, the token fields, the
// hashing and the architecture. A model whose schema hash differs from the
// scorer's must not be scored with it.
package inputs
