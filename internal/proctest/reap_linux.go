package proctest

import (
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

// ReapOrphans reaps every exited child that nobody waits for.
func ReapOrphans() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, _ := unix.Poll(fds, 0)
	return n == 0
}

// Exists reports whether pid exists at all, zombies included.
func Exists(pid int) bool {
	return unix.Kill(pid, 0) == nil
}
