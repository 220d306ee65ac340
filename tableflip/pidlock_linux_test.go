//go:build linux

package tableflip_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tableflip-go/tableflip/internal/proctest"
)

// A second instance given the same PID file refuses to start while a
// generation of the first one runs: the lock is taken in New, before the
// second instance listens or writes anything. The lock is handed across
// upgrades (every generation holds the same open file description, so it
// is never released in between), does not keep the child from rewriting
// the PID file, and goes with the final stop: then a new instance starts.
func TestPIDFileSecondInstanceRefused(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "app.pid")
	s := startServer(t, "TFTEST_PIDFILE="+pidfile)

	refused := func(when string) {
		t.Helper()
		p := proctest.Start(t, "server", "TFTEST_PIDFILE="+pidfile)
		line := p.Expect("ERR ")
		if !strings.Contains(line, "pid file in use by a running instance") || !strings.Contains(line, "pid "+strconv.Itoa(s.pid)) {
			t.Errorf("%s: second instance: %s, want a clear refusal naming pid %d", when, line, s.pid)
		}
		if code := p.Wait(); code == 0 {
			t.Errorf("%s: second instance exited 0", when)
		}
		if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != strconv.Itoa(s.pid) {
			t.Errorf("%s: pid file %q, want %d", when, b, s.pid)
		}
	}
	refused("first generation")
	for i := range 2 {
		s.mustUpgrade() // the child writes the file although the lock is held
		refused(fmt.Sprintf("after upgrade %d", i+1))
	}

	syscall.Kill(s.pid, syscall.SIGTERM)
	s.p.Expect(fmt.Sprintf("EXIT pid=%d", s.pid))
	proctest.WaitGone(t, s.pid)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left after the final stop: %v", entries)
	}
	next := startServer(t, "TFTEST_PIDFILE="+pidfile)
	if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != strconv.Itoa(next.pid) {
		t.Fatalf("new instance after the final stop: pid file %q, want %d", b, next.pid)
	}
}

// A generation killed with SIGKILL releases the lock with its last
// descriptor: the PID file it leaves names a dead pid, and a new instance
// starts.
func TestPIDFileStaleAfterKill(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "app.pid")
	s := startServer(t, "TFTEST_PIDFILE="+pidfile)
	syscall.Kill(s.pid, syscall.SIGKILL)
	proctest.WaitGone(t, s.pid)
	next := startServer(t, "TFTEST_PIDFILE="+pidfile)
	if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != strconv.Itoa(next.pid) {
		t.Fatalf("pid file %q, want %d", b, next.pid)
	}
}
