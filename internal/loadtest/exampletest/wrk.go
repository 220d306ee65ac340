package exampletest

import (
	"os"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// NeedWrk fails t when wrk is not installed, unless TABLEFLIP_NO_WRK=1
// says to skip t: wrk is part of the test setup (Debian: apt-get install
// wrk), and a judge skipped silently proves nothing.
func NeedWrk(t testing.TB) {
	t.Helper()
	if loadtest.WrkAvailable() {
		return
	}
	if os.Getenv("TABLEFLIP_NO_WRK") == "1" {
		t.Skip("wrk not installed and TABLEFLIP_NO_WRK=1")
	}
	t.Fatal("wrk is not installed: apt-get install wrk (or set TABLEFLIP_NO_WRK=1 to skip this test explicitly)")
}
