package stream

import "fmt"

// Reason is the stable, machine-readable cause of a dead-lettered record. It
// is written to the DLQ record's `error-reason` header and used as the
// `reason` label of the dead-letter metrics.
type Reason string

// The reasons a record is dead-lettered.
const (
	ReasonMalformed     Reason = "malformed"      // not a JSON object
	ReasonTooLarge      Reason = "too_large"      // value above Limits.MaxEventBytes
	ReasonUnknownSchema Reason = "unknown_schema" // schema version not understood
	ReasonMissingField  Reason = "missing_field"  // a required field is absent or empty
	ReasonBadField      Reason = "bad_field"      // a field has the wrong type or an out-of-range value
	ReasonBadTime       Reason = "bad_time"       // ts is not RFC 3339 or before 1970
	ReasonFutureTime    Reason = "future_time"    // ts beyond now + Limits.MaxFuture
	ReasonNegativePrice Reason = "negative_price" // price < 0
	ReasonLate          Reason = "late"           // older than the partition watermark minus allowed lateness
	ReasonKeyMismatch   Reason = "key_mismatch"   // message key is not the event's user/anonymous id
	ReasonBadInternal   Reason = "bad_internal"   // a pipeline-internal record that cannot be read
)

// DecodeError is returned by Decoder.Decode for every bad record.
type DecodeError struct {
	Reason Reason
	Field  string // the offending field, when there is one
	Msg    string
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (%s): %s", e.Reason, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Msg)
}

func decodeErr(r Reason, field, msg string) *DecodeError {
	return &DecodeError{Reason: r, Field: field, Msg: msg}
}
