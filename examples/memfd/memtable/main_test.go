package memtable_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the role a re-executed test binary was started for (see
// roles_linux_test.go), or the tests.
func TestMain(m *testing.M) {
	if role := os.Getenv("TFTEST_ROLE"); role != "" {
		os.Exit(runRole(role))
	}
	setup()
	goleak.VerifyTestMain(m)
}
