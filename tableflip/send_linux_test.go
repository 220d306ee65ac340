package tableflip

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inodeOf is the inode of the file open at fd, false when fd is closed.
func inodeOf(fd int) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// Forget while an upgrade sends the passed files (off the run goroutine)
// must not close a descriptor about to be sent: its number could be reused
// by another file, which the child would get under the forgotten name.
func TestForgetWhileSending(t *testing.T) {
	u, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fi, err := w.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pipe := fi.Sys().(*syscall.Stat_t).Ino
	for _, key := range []string{"a", "b"} {
		if err := u.Pass("pipe", key, w, nil); err != nil {
			t.Fatal(err)
		}
	}

	u.do(func() { u.s.upgrade = &upgradeRun{cancel: func() {}} }) // as startUpgrade does
	all := u.filesToSend(&Handoff{})
	if len(all) != 2 {
		t.Fatalf("%d files to send, want 2", len(all))
	}
	u.Forget("pipe", "a")
	for _, e := range all {
		if ino, ok := inodeOf(e.fd); !ok || ino != pipe {
			t.Fatalf("%s:%s closed while it is being sent", e.transport, e.key)
		}
	}
	u.do(func() { // as run does when the upgrade ends
		u.s.upgrade = nil
		u.finishUpgrade(upgradeResult{err: ErrNotReady}, time.Now())
	})
	for _, e := range all {
		ino, open := inodeOf(e.fd)
		if forgotten := e.key == "a"; forgotten == (open && ino == pipe) {
			t.Fatalf("%s:%s open=%v after the send, want %v", e.transport, e.key, open, !forgotten)
		}
	}
	// With no send in progress, Forget closes at once.
	fd := all[1].fd
	u.Forget("pipe", "b")
	if ino, ok := inodeOf(fd); ok && ino == pipe {
		t.Fatal("Forget left the file open")
	}
}

// A child that something else in this process reaped (a zombie reaper
// run as PID 1) has no ProcessState: its ChildError says -1, no panic.
func TestExitStatus(t *testing.T) {
	t.Parallel()
	if got := exitStatus(nil); got != -1 {
		t.Fatalf("exitStatus(nil) = %d", got)
	}
	cmd := exec.Command("/bin/sh", "-c", "exit 3")
	cmd.Run()
	if got := exitStatus(cmd.ProcessState); got != 3 {
		t.Fatalf("exit 3: exitStatus = %d", got)
	}
	cmd = exec.Command("/bin/sh", "-c", "kill -9 $$")
	cmd.Run()
	if got := exitStatus(cmd.ProcessState); got != -1 {
		t.Fatalf("killed: exitStatus = %d", got)
	}
}
