// Package fdutil holds the file-descriptor helpers shared by the
// transports.
package fdutil

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrNotSupported is returned by Inspect on platforms without unix
// sockets, where Listening reports false.
var ErrNotSupported = errors.New("fdutil: not supported on this platform")

// SocketInfo describes a socket descriptor.
type SocketInfo struct {
	Family    int  // unix.AF_INET, AF_INET6, AF_UNIX
	Type      int  // unix.SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	Listening bool // SO_ACCEPTCONN
}

// String names the socket the way an error message needs it: "listening
// unix stream socket", "udp socket".
func (s SocketInfo) String() string {
	fam := map[int]string{afInet: "ipv4", afInet6: "ipv6", afUnix: "unix"}[s.Family]
	typ := map[int]string{sockStream: "stream", sockDgram: "datagram", sockSeqpacket: "seqpacket"}[s.Type]
	if fam == "" {
		fam = fmt.Sprintf("family-%d", s.Family)
	}
	if typ == "" {
		typ = fmt.Sprintf("type-%d", s.Type)
	}
	str := fam + " " + typ + " socket"
	if s.Listening {
		str = "listening " + str
	}
	return str
}

// Inspect reports what kind of socket c is. Its error names the system
// call that failed (getsockopt: socket operation on non-socket, for a
// file that is no socket); callers say what they expected.
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
	return info, ierr
}
