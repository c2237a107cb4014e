package deploy

import "fmt"

// ContractError reports a malformed line of the metrics contract.
type ContractError struct {
	Line int    // 1-based line number in METRICS.md; 0 for the file as a whole
	Msg  string // what is wrong
}

func (e *ContractError) Error() string {
	if e.Line == 0 {
		return "metrics contract: " + e.Msg
	}
	return fmt.Sprintf("metrics contract: line %d: %s", e.Line, e.Msg)
}

func contractErr(line int, format string, args ...any) error {
	return &ContractError{Line: line, Msg: fmt.Sprintf(format, args...)}
}
