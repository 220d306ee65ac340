package main

// The tests of examples/udp run the program as a user would: TestMain
// builds it with `go build` (with -race when the tests run with -race), and
// each test starts it, sends it datagrams, and upgrades it with SIGHUP
// between real processes (internal/loadtest/exampletest).

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// program is the examples/udp binary that TestMain built.
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.Main(m, &program)
}
