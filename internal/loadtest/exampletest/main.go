package exampletest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// RoleEnv is the environment variable that makes a test binary run as the
// example program (its value is "example"); see MainOrRun.
const RoleEnv = "TFTEST_ROLE"

// Main is the TestMain of a package whose tests run the program that
// package is: it builds the package in the current directory (the one
// under test) with `go build` into a new temporary directory, with -race
// when the tests run with -race, sets *p to the binary, runs the tests,
// removes the directory, checks for leaked goroutines as
// goleak.VerifyTestMain does, and exits.
func Main(m *testing.M, p *Program) {
	wd, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	dir, err := os.MkdirTemp("", "tableflip-examples-"+filepath.Base(wd)+"-")
	if err != nil {
		fail(err)
	}
	var flags []string
	if raceEnabled {
		flags = append(flags, "-race")
	}
	bin, err := loadtest.Build(context.Background(), dir, ".", flags...)
	if err != nil {
		os.RemoveAll(dir)
		fail(err)
	}
	*p = Program{Path: bin}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(verifyNoLeaks(code))
}

// MainOrRun is the TestMain of a package whose tests run the test binary
// itself as the program. Started with RoleEnv=example (by p's commands),
// the binary is the program: it exits with run's status, run getting the
// command line's arguments; its generations are re-executed the same way,
// with the same arguments and environment. Otherwise it sets *p to the test
// binary in that role, runs the tests, and checks for leaked goroutines.
func MainOrRun(m *testing.M, p *Program, run func(args []string) int) {
	if os.Getenv(RoleEnv) == "example" {
		os.Exit(run(os.Args[1:]))
	}
	exe, err := os.Executable()
	if err != nil {
		fail(err)
	}
	*p = Program{Path: exe, Env: []string{RoleEnv + "=example"}}
	os.Exit(verifyNoLeaks(m.Run()))
}

// verifyNoLeaks is what goleak.VerifyTestMain does after the tests.
func verifyNoLeaks(code int) int {
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			return 1
		}
	}
	return code
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
