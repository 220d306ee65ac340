package fxmodule_test

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/proctest"
)

// TestMain runs the role a re-executed test binary was started for (see
// roles_linux_test.go), or the tests.
func TestMain(m *testing.M) { proctest.Main(m, roles) }
