//go:build !race

package model

// raceDetector reports a -race build, whose instrumented gpu loops run about 12x slower.
const raceDetector = false
