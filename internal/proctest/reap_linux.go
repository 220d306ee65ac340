package proctest

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// SetSubreaper makes the calling process the reaper of its orphaned
// descendants, so tests can reap generations whose parent exited.
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

func becomeReaper() error { return SetSubreaper() }

// WaitGone waits until pid has exited and, if it is our child, reaps it.
func WaitGone(t testing.TB, pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone and reaped
	}
	defer unix.Close(fd)
	waitGone(t, pid, fd)
}

// waitGone is WaitGone with a pidfd of pid.
func waitGone(t testing.TB, pid, fd int) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(Timeout)
	for {
		n, err := unix.Poll(fds, int(time.Until(deadline)/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if n == 0 || time.Now().After(deadline) {
			t.Errorf("pid %d still alive after %v", pid, Timeout)
			return
		}
		break
	}
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, unix.WNOHANG, nil)
}

// running reports whether the process of pidfd fd has not exited.
func running(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, _ := unix.Poll(fds, 0)
	return n == 0
}

// process is a pid and a pidfd of it.
type process struct{ pid, fd int }

// openDescendant returns a pidfd of pid if pid is a running descendant of
// this process. The pidfd pins the process: a signal sent through it
// cannot reach another process that is given the same pid later.
func openDescendant(pid int) (fd int, ok bool) {
	if pid <= 0 {
		return -1, false
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, false
	}
	// Still running after its ancestry was read: the ancestry was its own.
	if descends(pid) && running(fd) {
		return fd, true
	}
	unix.Close(fd)
	return -1, false
}

// descends reports whether pid is a descendant of this process, from the
// parent pids in /proc.
func descends(pid int) bool {
	self := os.Getpid()
	for range 1000 { // deeper than any tree a test makes
		ppid := parentOf(pid)
		switch {
		case ppid == self:
			return true
		case ppid <= 1:
			return false
		}
		pid = ppid
	}
	return false
}

// parentOf returns the parent pid of pid, 0 if it cannot tell.
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// Exists reports whether pid exists at all, zombies included.
func Exists(pid int) bool {
	return unix.Kill(pid, 0) == nil
}
