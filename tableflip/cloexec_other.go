//go:build unix && !linux

package tableflip

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpairCloexec makes a stream socketpair that is close-on-exec. Without
// SOCK_CLOEXEC, the fork lock keeps a concurrent exec from inheriting it
// between the two calls, as the syscall package does.
func socketpairCloexec() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return fds, err
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	return fds, nil
}
