//go:build unix

package fdutil

import (
	"os"

	"golang.org/x/sys/unix"
)

func inspect(fd int) (SocketInfo, error) {
	var info SocketInfo
	var err error
	if info.Type, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return info, os.NewSyscallError("getsockopt", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return info, os.NewSyscallError("getsockname", err)
	}
	switch sa.(type) {
	case *unix.SockaddrInet4:
		info.Family = unix.AF_INET
	case *unix.SockaddrInet6:
		info.Family = unix.AF_INET6
	case *unix.SockaddrUnix:
		info.Family = unix.AF_UNIX
	}
	info.Listening = acceptConn(fd)
	return info, nil
}

func acceptConn(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	return err == nil && v != 0
}
