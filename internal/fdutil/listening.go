package fdutil

import "syscall"

// Listening reports whether c is a listening socket (SO_ACCEPTCONN), in one
// system call.
func Listening(c syscall.Conn) (bool, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, err
	}
	var ok bool
	if err := rc.Control(func(fd uintptr) { ok = acceptConn(int(fd)) }); err != nil {
		return false, err
	}
	return ok, nil
}
