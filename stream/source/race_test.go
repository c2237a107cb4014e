//go:build race

package source_test

// raceEnabled: under the race detector JSON decoding is about ten times
// slower, so the bundled-data tests re-decode only a sample of the records
// (every record is still decoded once by the reader itself).
const raceEnabled = true
