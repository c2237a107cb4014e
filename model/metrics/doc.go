// Package metrics evaluates probabilistic scores against binary outcomes:
// the exact ROC AUC (ties by mid-rank), the log-loss and the expected
// calibration error, plus [Prequential], a windowed evaluator that keeps the
// last N (score, label) pairs of a stream in a ring and reports the same
// metrics over them ("prequential" evaluation: each prediction is scored
// against the label that arrives after it).
//
// Undefined values are reported as NaN, never as a panic: an AUC without
// both classes, an empty input, mismatched lengths, a NaN score, a
// probability outside [0, 1] for the log-loss or ECE. Callers test with
// math.IsNaN.
package metrics
