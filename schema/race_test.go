//go:build race

package schema_test

// raceEnabled: under the race detector reading and validating events is
// about ten times slower, so TestBundledEventsValidate checks the head of
// each dataset only.
const raceEnabled = true
