//go:build race

package scorer

// raceEnabled shortens the heaviest tests under the race detector, which
// slows them tenfold: they use a prefix of the sample.
const raceEnabled = true
