package observability

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig is wrapped by every configuration error of this package:
// a bad OTEL_* environment variable, log format or AdminConfig field.
// Test with errors.Is.
var ErrInvalidConfig = errors.New("observability: invalid configuration")

// EnvError reports an OTEL_* environment variable this package cannot honour.
// It wraps ErrInvalidConfig.
type EnvError struct {
	// Var is the environment variable, e.g. "OTEL_TRACES_EXPORTER".
	Var string
	// Value is its value as read.
	Value string
	// Reason says what is wrong and what is accepted.
	Reason string
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("observability: %s=%q: %s", e.Var, e.Value, e.Reason)
}

// Unwrap returns ErrInvalidConfig.
func (e *EnvError) Unwrap() error { return ErrInvalidConfig }

// FieldError reports an invalid field of a configuration struct (AdminConfig)
// or an invalid argument of a constructor (NewLogger). It wraps
// ErrInvalidConfig.
type FieldError struct {
	// Field names the field or argument, e.g. "AdminConfig.Registry".
	Field string
	// Reason says what is wrong.
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("observability: %s: %s", e.Field, e.Reason)
}

// Unwrap returns ErrInvalidConfig.
func (e *FieldError) Unwrap() error { return ErrInvalidConfig }
