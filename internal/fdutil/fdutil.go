// Package fdutil holds the file-descriptor helpers shared by the core and
// the transports.
package fdutil

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrNotSupported is returned by every helper on platforms without them.
var ErrNotSupported = errors.New("fdutil: not supported on this platform")

// SocketInfo describes a socket descriptor.
type SocketInfo struct {
	Family    int  // unix.AF_INET, AF_INET6, AF_UNIX
	Type      int  // unix.SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	Listening bool // SO_ACCEPTCONN
}

// Inspect reports what kind of socket c is.
func Inspect(c syscall.Conn) (SocketInfo, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return SocketInfo{}, err
	}
	var info SocketInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) { info, ierr = inspect(int(fd)) }); err != nil {
		return SocketInfo{}, err
	}
	if ierr != nil {
		return SocketInfo{}, fmt.Errorf("not a socket: %w", ierr)
	}
	return info, nil
}
