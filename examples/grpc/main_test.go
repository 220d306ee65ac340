package main

// The tests of examples/grpc run the program as a user would: TestMain
// builds it with `go build` (with -race when the tests run with -race), and
// each test starts it, drives real grpc-go clients at it, and upgrades it
// with SIGHUP between real processes (internal/loadtest/exampletest).

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// upgrades is how many consecutive upgrades the load test drives.
const upgrades = 20

// program is the examples/grpc binary that TestMain built.
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.Main(m, &program)
}

// TestBadFlags checks that bad flags are refused with status 2.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-log", "verbose"}, {"-drain", "0s"}, {"-tick", "-1s"}, {"-nosuchflag"}} {
		if out, code := program.Run(t, args...); code != 2 {
			t.Errorf("%q: exit status %d, want 2; output:\n%s", args, code, out)
		}
	}
}
