package main

// The tests run the program as a user would: TestMain builds it with
// `go build` (with -race when the tests run with -race), and the tests
// start it, drive load at it with internal/loadtest, and upgrade it with
// SIGHUP between real processes.

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// serverBin is the examples/fx binary that TestMain built.
var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tableflip-examples-fx-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var flags []string
	if raceEnabled {
		flags = append(flags, "-race")
	}
	serverBin, err = loadtest.Build(context.Background(), dir, ".", flags...)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	// What goleak.VerifyTestMain does, with the build directory removed
	// first.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
