// Package featurestest recomputes features in batch, straight from their
// definitions, over a complete list of events. It is the reference the
// streaming state is tested against: a different algorithm (sort, group,
// count) that shares nothing with features.State but the Config.
package featurestest
