package nn

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of them, so
// callers can branch with errors.Is.
var (
	// ErrInvalidArch: an Arch field is out of range.
	ErrInvalidArch = errors.New("nn: invalid architecture")
	// ErrNumericLength: Example.Numeric does not have one value per
	// Arch.NumericFeatures entry.
	ErrNumericLength = errors.New("nn: wrong number of numeric values")
	// ErrNonFinite: a numeric input or a known label is NaN or ±Inf.
	ErrNonFinite = errors.New("nn: non-finite value")
	// ErrUnknownField: Example.Tokens has a key that is not in
	// Arch.TokenFields.
	ErrUnknownField = errors.New("nn: unknown token field")
	// ErrBucketRange: a bucket id is not below Arch.HashBuckets.
	ErrBucketRange = errors.New("nn: bucket id out of range")
	// ErrLabels: Labels or Mask do not have one entry per head, or a known
	// label is outside [0, 1].
	ErrLabels = errors.New("nn: bad labels")
	// ErrDiverged: the training loss became NaN or infinite; the step was
	// not applied.
	ErrDiverged = errors.New("nn: training diverged")
	// ErrClosed: the Network was closed.
	ErrClosed = errors.New("nn: network closed")
	// ErrCorrupt: a serialised model is truncated, malformed or fails its
	// checksum.
	ErrCorrupt = errors.New("nn: corrupt model")
	// ErrVersion: a serialised model has a format version this build does
	// not read.
	ErrVersion = errors.New("nn: unsupported model format version")
)

// InputError describes an invalid Example. It wraps one of ErrNumericLength,
// ErrNonFinite, ErrUnknownField, ErrBucketRange or ErrLabels.
type InputError struct {
	// Example is the index of the offending example in the batch passed to
	// TrainBatch, or -1 for a single example.
	Example int
	// Field names the offending input ("numeric", a feature name, a token
	// field, "labels" or "mask").
	Field string
	// Err is the sentinel.
	Err error
	// Msg gives details.
	Msg string
}

func (e *InputError) Error() string {
	if e.Example >= 0 {
		return fmt.Sprintf("%v: example %d, %s: %s", e.Err, e.Example, e.Field, e.Msg)
	}
	return fmt.Sprintf("%v: %s: %s", e.Err, e.Field, e.Msg)
}

// Unwrap returns the sentinel.
func (e *InputError) Unwrap() error { return e.Err }

// corrupt wraps ErrCorrupt with details.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
