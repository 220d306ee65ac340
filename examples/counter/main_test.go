package main

// The tests run the counter as a user would: TestMain builds it with
// `go build` (with -race when the tests run with -race), and each test
// starts it, sends it increments from concurrent clients, and upgrades it
// with SIGHUP between real processes.

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// program is the examples/counter binary that TestMain built.
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.Main(m, &program)
}
