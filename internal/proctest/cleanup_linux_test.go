package proctest

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCleanupSparesOtherProcesses: Cleanup kills the processes of its tree
// that a line names, and spares a named process outside the tree, as a pid
// of an exited generation reused by another process would be.
func TestCleanupSparesOtherProcesses(t *testing.T) {
	// An orphan: its parent, sh, exits at once, and this process is not a
	// subreaper, so it is not a descendant of this process.
	out, err := exec.Command("/bin/sh", "-c", "sleep 300 </dev/null >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatal(err)
	}
	other := openPidfd(t, strings.TrimSpace(string(out)))
	if descends(other.pid) {
		t.Fatalf("pid %d descends from this process, want an orphan adopted elsewhere", other.pid)
	}

	// The tree: sh, which becomes cat (it exits when stdin closes), and
	// its child sleep. Its lines name the child and the other process.
	p := StartCommand(t, exec.Command("/bin/sh", "-c", `sleep 300 & echo "CHILD pid=$!"; echo "OTHER pid=$1"; exec cat`, "sh", strconv.Itoa(other.pid)))
	child := openPidfd(t, Fields(p.Expect("CHILD "))["pid"])
	p.Expect("OTHER ")
	if !descends(child.pid) {
		t.Fatalf("the tree's child %d does not descend from this process", child.pid)
	}
	p.Cleanup()

	if running(child.fd) {
		t.Errorf("Cleanup left the tree's child %d running", child.pid)
	}
	if !running(other.fd) {
		t.Errorf("Cleanup killed pid %d, which is not of its tree", other.pid)
	}
}

// openPidfd opens a pidfd of the pid in s; the test's cleanup kills the
// process if it still runs, waits for it, and closes the pidfd.
func openPidfd(t *testing.T, s string) process {
	t.Helper()
	pid, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("pid %q: %v", s, err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd of %d: %v", pid, err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		waitGone(t, pid, fd)
		unix.Close(fd)
	})
	return process{pid, fd}
}
