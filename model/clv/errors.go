package clv

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Test for them with errors.Is.
var (
	// ErrInvalidInput reports a NaN, infinite, negative or otherwise
	// impossible value in a customer summary, transaction, parameter or option.
	ErrInvalidInput = errors.New("clv: invalid input")
	// ErrNoData reports that a fit had no usable customers, or data that
	// cannot identify the model (for example no repeat purchases at all).
	ErrNoData = errors.New("clv: not enough data to fit")
	// ErrFit reports that the optimiser failed or ended at a non-finite
	// log-likelihood.
	ErrFit = errors.New("clv: fit failed")
	// ErrNoPurchases reports a [Summary] that has not seen any purchase.
	ErrNoPurchases = errors.New("clv: summary has no purchases")
)

// InputError describes one invalid input value. It wraps [ErrInvalidInput].
type InputError struct {
	Index int    // index of the offending customer or transaction; -1 when not applicable
	Field string // the offending field, e.g. "Frequency"
	Msg   string
}

func (e *InputError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("clv: invalid input at index %d, %s: %s", e.Index, e.Field, e.Msg)
	}
	return fmt.Sprintf("clv: invalid %s: %s", e.Field, e.Msg)
}

// Unwrap returns [ErrInvalidInput].
func (e *InputError) Unwrap() error { return ErrInvalidInput }

func inputErr(index int, field, msg string) *InputError {
	return &InputError{Index: index, Field: field, Msg: msg}
}
