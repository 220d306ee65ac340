package control_test

import (
	"testing"

	"github.com/tableflip-go/tableflip/internal/proctest"
)

// TestMain makes this process the reaper of the service generations the
// tests start, and checks for leaked goroutines.
func TestMain(m *testing.M) { proctest.Main(m, nil) }
