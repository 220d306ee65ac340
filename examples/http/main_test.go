package main

// The tests of examples/http run the program as a user would: TestMain
// builds it with `go build` (with -race when the tests run with -race), and
// each test starts it, drives load at it with internal/loadtest, and
// upgrades it with SIGHUP between real processes (internal/loadtest/
// exampletest).

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// upgrades is how many consecutive upgrades each test drives.
const upgrades = 20

// program is the examples/http binary that TestMain built.
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.Main(m, &program)
}
