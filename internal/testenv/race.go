//go:build race

package testenv

// raceEnabled reports whether this test binary runs with the race detector,
// so that binaries built for it run with the race detector too.
const raceEnabled = true
