package bench

import "errors"

// Errors returned by the package; match them with errors.Is.
var (
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("bench: invalid configuration")
	// ErrSample: a sample cannot be re-keyed (empty, out of time order,
	// spanning more than CopyShift) or a re-keying was asked for no users.
	ErrSample = errors.New("bench: bad sample")
	// ErrWorker: a worker process failed, or spoke out of protocol.
	ErrWorker = errors.New("bench: worker failed")
	// ErrTimeout: a phase did not finish within its bound.
	ErrTimeout = errors.New("bench: phase timed out")
)
