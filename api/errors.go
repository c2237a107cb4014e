package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Errors a backend returns to select a response. Any other error is an
// internal error (500, logged, never shown to the client). Wrap them freely:
// the server tests with errors.Is.
var (
	// ErrNotFound: the profile, segment or receipt does not exist (404).
	ErrNotFound = errors.New("api: not found")
	// ErrInvalidCursor: Segments.Members got a cursor it did not issue or
	// that has expired (400).
	ErrInvalidCursor = errors.New("api: invalid cursor")
	// ErrUnavailable: the backend's store is unreachable or overloaded;
	// the client should retry later (503 with Retry-After).
	ErrUnavailable = errors.New("api: backend unavailable")
)

// ErrInvalidConfig is wrapped by every configuration error: a Config field,
// a missing backend, a token file or TLS files that cannot be used.
var ErrInvalidConfig = errors.New("api: invalid configuration")

// ConfigError reports an invalid Config field. It wraps ErrInvalidConfig.
type ConfigError struct {
	Field  string // e.g. "Config.RequestTimeout"
	Reason string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("api: %s: %s", e.Field, e.Reason) }

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// TokenFileError locates a problem in a token file. It wraps
// ErrInvalidConfig and never contains a token or digest.
type TokenFileError struct {
	File   string // the path; "" when parsed from bytes
	Entry  int    // 1-based index in the tokens list; 0 for the whole file
	Line   int    // 1-based line when known
	Reason string
}

func (e *TokenFileError) Error() string {
	file := e.File
	if file == "" {
		file = "token file"
	}
	switch {
	case e.Entry > 0 && e.Line > 0:
		return fmt.Sprintf("api: %s:%d: token #%d: %s", file, e.Line, e.Entry, e.Reason)
	case e.Entry > 0:
		return fmt.Sprintf("api: %s: token #%d: %s", file, e.Entry, e.Reason)
	}
	return fmt.Sprintf("api: %s: %s", file, e.Reason)
}

// Unwrap returns ErrInvalidConfig.
func (e *TokenFileError) Unwrap() error { return ErrInvalidConfig }

// Code is the stable, machine-readable kind of an error response: the
// "code" member of its problem details and the last part of its "type".
type Code string

// The error codes. They are part of the API contract: never renamed.
const (
	CodeBadRequest       Code = "bad_request"        // 400: malformed id, name, cursor or limit
	CodeUnauthorized     Code = "unauthorized"       // 401: missing, malformed, unknown or expired token
	CodeForbidden        Code = "forbidden"          // 403: the token lacks the route's scope
	CodeNotFound         Code = "not_found"          // 404: no such route, profile, segment or receipt
	CodeMethodNotAllowed Code = "method_not_allowed" // 405: the path exists for other methods (see Allow)
	CodePayloadTooLarge  Code = "payload_too_large"  // 413: request body above Config.MaxBodyBytes
	CodeRateLimited      Code = "rate_limited"       // 429: the token's rate limit is spent (see Retry-After)
	CodeInternal         Code = "internal"           // 500: a bug or an unexpected backend error
	CodeUnavailable      Code = "unavailable"        // 503: the store is unreachable (see Retry-After)
	CodeTimeout          Code = "timeout"            // 504: the backend did not answer within Config.RequestTimeout
)

// ProblemTypePrefix starts the "type" URI of every problem: the type of
// code c is ProblemTypePrefix + c, e.g. "urn:streamprofile:problem:not_found".
const ProblemTypePrefix = "urn:streamprofile:problem:"

// Problem is an RFC 9457 problem details object, the body of every error
// response (Content-Type application/problem+json).
type Problem struct {
	// Type is ProblemTypePrefix + Code.
	Type string `json:"type"`
	// Title is the HTTP status text, e.g. "Not Found".
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence for humans. It never holds ids from
	// the request, backend error texts or other internals.
	Detail string `json:"detail,omitempty"`
	// Code is the stable error code.
	Code Code `json:"code"`
	// RequestID is the response's X-Request-Id, to quote when reporting a
	// problem; the server logs it with every 5xx.
	RequestID string `json:"request_id,omitempty"`
}

func newProblem(status int, code Code, detail, requestID string) Problem {
	return Problem{
		Type:      ProblemTypePrefix + string(code),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Code:      code,
		RequestID: requestID,
	}
}
