//go:build race

package testenv

// raceEnabled reports whether this test binary has the race detector.
const raceEnabled = true
