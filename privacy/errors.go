package privacy

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Test with errors.Is.
var (
	// ErrInvalidKey is returned for a key with an invalid id, a secret
	// shorter than MinSecretLen, or an id used twice.
	ErrInvalidKey = errors.New("privacy: invalid key")
	// ErrNoKeys is returned by LoadKeyFile and ParseKeys for a file that
	// holds no key.
	ErrNoKeys = errors.New("privacy: no key in key file")
	// ErrInvalidJSON is returned by MaskJSON for input that is not valid
	// JSON.
	ErrInvalidJSON = errors.New("privacy: invalid JSON")
	// ErrInvalidConfig is returned by NewMasker for an invalid
	// MaskerConfig.
	ErrInvalidConfig = errors.New("privacy: invalid config")
)

// KeyFileError locates a problem in a key file. It wraps ErrInvalidKey or
// ErrNoKeys. It never contains secret material.
type KeyFileError struct {
	File string // the path, or "" when parsed from bytes
	Line int    // 1-based; 0 when the problem concerns the whole file
	Msg  string
	Err  error
}

func (e *KeyFileError) Error() string {
	file := e.File
	if file == "" {
		file = "key file"
	}
	if e.Line > 0 {
		return fmt.Sprintf("privacy: %s:%d: %s", file, e.Line, e.Msg)
	}
	return fmt.Sprintf("privacy: %s: %s", file, e.Msg)
}

func (e *KeyFileError) Unwrap() error { return e.Err }
