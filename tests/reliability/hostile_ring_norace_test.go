//go:build !race

package reliability_test

const hostileRaceBuild = false
