package scorer

import "errors"

// Errors returned (wrapped) by this package.
var (
	// ErrConfig: an invalid Config.
	ErrConfig = errors.New("scorer: invalid config")
	// ErrCorrupt: a stored user state or item table that cannot be
	// decoded.
	ErrCorrupt = errors.New("scorer: corrupt stored state")
	// ErrFenced: Redis already holds state written from a later position
	// of the partition; another processor owns (or owned) it. The
	// processor drops its state and restarts from the stored checkpoint.
	ErrFenced = errors.New("scorer: partition fenced by a newer writer")
	// ErrUnknownSegment: Members was asked for a segment the catalogue
	// does not define.
	ErrUnknownSegment = errors.New("scorer: unknown segment")
	// ErrBadCursor: Members got a cursor it did not issue.
	ErrBadCursor = errors.New("scorer: invalid cursor")
)
