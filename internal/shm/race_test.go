//go:build race

package shm

// raceEnabled: see TestOpenAndInspectRacingTruncation.
const raceEnabled = true
