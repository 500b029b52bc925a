//go:build race

package reliability_test

// hostileRaceBuild: see skipHostileUnderRace.
const hostileRaceBuild = true
