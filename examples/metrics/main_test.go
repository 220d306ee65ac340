package main

// The tests of examples/metrics run the program as a user would (built by
// TestMain with `go build`, -race when the tests have it), upgrade it with
// SIGHUP between real processes, and scrape its /metrics over HTTP.

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// program is the examples/metrics binary that TestMain built.
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.Main(m, &program)
}

// TestBadFlags checks that bad flags are refused with status 2.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-log", "verbose"}, {"-drain", "0s"}, {"-nosuchflag"}} {
		if out, code := program.Run(t, args...); code != 2 {
			t.Errorf("%q: exit status %d, want 2; output:\n%s", args, code, out)
		}
	}
}
