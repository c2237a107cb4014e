package trainer

import "errors"

var (
	// ErrInvalidConfig wraps every Config.Validate error.
	ErrInvalidConfig = errors.New("trainer: invalid configuration")
	// ErrState: a stored trainer state does not decode or does not match
	// the configuration.
	ErrState = errors.New("trainer: bad trainer state")
	// ErrClosed: the trainer was closed.
	ErrClosed = errors.New("trainer: closed")
)
