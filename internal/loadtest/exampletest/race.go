//go:build race

package exampletest

// raceEnabled: the tests run with -race, so the program is built with it.
const raceEnabled = true
