//go:build unix

package tableflipprom

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// newLink returns a parent's end of a new link, and the file of the
// child's end for Handoff.AddFile (the caller closes it).
func newLink() (*link, *os.File, error) {
	// Close-on-exec at once, as os/exec's own pipes are (SOCK_CLOEXEC is
	// Linux only): the child gets its end through the handoff, not exec.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "tableflipprom-parent")
	theirs := os.NewFile(uintptr(fds[1]), "tableflipprom-child")
	l, err := fileLink(ours)
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return l, theirs, nil
}

// monotonicNow reads CLOCK_MONOTONIC, which every process of the machine
// shares; zero when it cannot.
func monotonicNow() mono {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return mono(ts.Nano())
}
