package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the program itself when a test starts the test binary as
// the example (TFTEST_ROLE=example); its generations are re-executed the
// same way, with the same arguments.
func TestMain(m *testing.M) {
	if os.Getenv("TFTEST_ROLE") == "example" {
		os.Exit(run(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}
