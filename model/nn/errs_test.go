package nn

import "errors"

var (
	errorsIs = errors.Is
	errorsAs = func(err error, target any) bool { return errors.As(err, target) }
)
