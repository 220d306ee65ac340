package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDemo runs the demo as `go run ./examples/demo -upgrades 3` would,
// wrk included when it is installed, and checks its verdict and summary.
func TestDemo(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the demo needs Linux")
	}
	var out bytes.Buffer
	code := run([]string{"-upgrades", "3", "-interval", "0"}, &out)
	t.Logf("demo output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("demo exited with status %d", code)
	}
	for _, want := range []string{
		"upgrade  3/3: pid ",
		"new-connection",
		"keep-alive",
		"  4           ",
		"Upgrade latency, SIGHUP to the new generation ready:",
		"held by 4 of 4 generations",
		"SIGHUP to the old generation drained and exited (status 0):",
		"Stop: SIGTERM to pid ",
		"exited with status 0",
		"OK: 0 failed requests across 3 upgrades",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
}

// TestDemoBadFlag checks that a bad flag is refused with status 2.
func TestDemoBadFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-upgrades", "x"}, &out); code != 2 {
		t.Fatalf("run -upgrades x: status %d, want 2; output:\n%s", code, out.String())
	}
}
