package testenv

import "errors"

// Errors reported (through t.Fatal) by the helpers in this package. They are
// exported so that tests of the helpers can match them with errors.Is.
var (
	// ErrLockTimeout: a helper waited longer than its bound for other tests
	// to finish using a service (shared access waits for a fault test,
	// exclusive access for every other user).
	ErrLockTimeout = errors.New("testenv: timed out waiting for access to a service")

	// ErrSelfDeadlock: a test asked for exclusive access to a service it
	// (or a parent test) already uses shared, and so would wait for itself.
	ErrSelfDeadlock = errors.New("testenv: test would wait for itself")

	// ErrNotExclusive: a fault helper (StopKafka, StartRedis, ...) was called
	// by a test that does not hold the service exclusively.
	ErrNotExclusive = errors.New("testenv: fault injection without exclusive access")
)
