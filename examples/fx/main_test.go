package main

// The tests run the program as a user would: TestMain builds it with
// `go build` (with -race when the tests run with -race), and the tests
// start it, drive load at it with internal/loadtest, and upgrade it with
// SIGHUP between real processes (internal/loadtest/exampletest).

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// program is the examples/fx binary that TestMain built.
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.Main(m, &program)
}
