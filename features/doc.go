// Package features keeps rolling per-user behavioural features: lifetime
// counters, exact sliding windows at a fixed bucket granularity, decayed
// activity scores, sessions, funnel rates, RFM scores, murmur3-hashed
// category/brand/search-term affinities and price sensitivity.
//
// State is applied one event at a time and is independent of the order in
// which events inside the allowed lateness arrive. The Redis store writes each
// user's state together with the partition offset that produced it in one
// atomic operation.
package features
