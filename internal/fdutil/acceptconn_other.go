//go:build unix && !linux

package fdutil

import "golang.org/x/sys/unix"

func acceptConn(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	return err == nil && v != 0
}
