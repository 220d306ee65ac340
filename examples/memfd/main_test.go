package main

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// program is the test binary as the example: TestMain runs the program
// itself when a test starts the binary that way (TFTEST_ROLE=example); its
// generations are re-executed the same way, with the same arguments.
var program exampletest.Program

func TestMain(m *testing.M) {
	exampletest.MainOrRun(m, &program, run)
}
