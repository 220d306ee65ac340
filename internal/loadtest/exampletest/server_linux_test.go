package exampletest_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestStart starts the program as a server, sees what it prints, and
// stops it with SIGTERM.
func TestStart(t *testing.T) {
	srv := program.Start(t, "serve")
	pid := strconv.Itoa(srv.PID())
	if line, _ := srv.Stdout.Wait(t, 0, "ready"); line != "ready pid="+pid {
		t.Errorf("stdout: %q, want ready pid=%s", line, pid)
	}
	if line, _ := srv.Stderr.Wait(t, 0, "serving"); line != "serving pid="+pid {
		t.Errorf("stderr: %q, want serving pid=%s", line, pid)
	}
	if b, err := os.ReadFile(srv.PIDFile); err != nil || strings.TrimSpace(string(b)) != pid {
		t.Errorf("pid file %s: %q %v, want %s", srv.PIDFile, b, err, pid)
	}
	srv.StopClean(t)
	if line, _ := srv.Stderr.Wait(t, 0, "stopping"); line != "stopping" {
		t.Errorf("stderr after SIGTERM: %q", line)
	}
}
