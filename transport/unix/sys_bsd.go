//go:build unix && !linux

package unixtransport

import (
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	abstractSupported  = false
	seqpacketSupported = false
	// sun_path must hold the terminating NUL.
	maxPathLen = len(unix.RawSockaddrUnix{}.Path) - 1
)

func socket(typ int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := unix.Socket(unix.AF_UNIX, typ, 0)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func listenBacklog() int { return unix.SOMAXCONN }
