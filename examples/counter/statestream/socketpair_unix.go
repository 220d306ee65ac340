//go:build unix

package statestream

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpair returns a connected pair of unix stream sockets, close-on-exec
// and non-blocking, so that os.NewFile makes them pollable and write
// deadlines work.
func socketpair() (ours, theirs *os.File, err error) {
	syscall.ForkLock.RLock() // no fork between socketpair and CloseOnExec
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.CloseOnExec(fds[0])
		unix.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, err
	}
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return nil, nil, err
		}
	}
	return os.NewFile(uintptr(fds[0]), "statestream"), os.NewFile(uintptr(fds[1]), "statestream-child"), nil
}
