package main

// The tests of examples/quic run the program as a user would: TestMain
// builds it (with -race when the tests run with -race), and each test
// starts it, talks to it with quic-go clients, and upgrades it with SIGHUP
// between real processes (internal/loadtest/exampletest).

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// program is the examples/quic binary that TestMain built.
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.Main(m, &program)
}
