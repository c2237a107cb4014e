package registry

import "errors"

// Errors returned by the registry. Backend errors wrap them where they
// apply; I/O errors are returned as they are.
var (
	// ErrNotFound: no such version.
	ErrNotFound = errors.New("registry: version not found")
	// ErrNoChampion: no version is champion yet.
	ErrNoChampion = errors.New("registry: no champion")
	// ErrNoPrevious: a rollback found no earlier good champion.
	ErrNoPrevious = errors.New("registry: no previous good version to roll back to")
	// ErrTransition: the status change is not allowed (for example
	// promoting the champion again).
	ErrTransition = errors.New("registry: status change not allowed")
	// ErrConflict: a concurrent writer kept changing the registry; the
	// operation gave up after its retries.
	ErrConflict = errors.New("registry: concurrent update conflict")
	// ErrCorrupt: a stored record does not decode.
	ErrCorrupt = errors.New("registry: corrupt record")
	// ErrSchema: a model's feature-schema hash is not the one expected.
	ErrSchema = errors.New("registry: feature schema mismatch")
	// ErrInvalidConfig: a Config or WatcherConfig is unusable.
	ErrInvalidConfig = errors.New("registry: invalid configuration")
)
