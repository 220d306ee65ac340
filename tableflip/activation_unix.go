//go:build unix

package tableflip

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	sdactivation "github.com/coreos/go-systemd/v22/activation"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// loadActivation takes the files of systemd socket activation, if
// LISTEN_PID is this process, and removes LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES from the environment in any case, as sd_listen_fds(1) does.
// The files are made close-on-exec: later generations get them through the
// handoff, never by accident.
func loadActivation(log *zap.Logger) *activation {
	_, set := os.LookupEnv("LISTEN_FDS")
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	pid := os.Getenv("LISTEN_PID")
	files := sdactivation.Files(true)
	if len(files) == 0 {
		if set {
			log.Info("ignoring socket activation for another process",
				zap.Int("pid", os.Getpid()), zap.String("listen_pid", pid))
		}
		return nil
	}
	a := newActivation(log, files, names)
	for i, f := range files {
		log.Info("socket-activated file",
			zap.Int("pid", os.Getpid()), zap.Int("fd", listenFdsStart+i),
			zap.String("fdname", a.names[i]), zap.String("address", describeSocket(f)))
	}
	return a
}

// matchSocketAddress reports whether c is a socket that net.Listen or
// net.ListenPacket would have created for network and address: same network
// kind (a listening stream socket for "tcp" and "unix", a datagram socket for
// "udp" and "unixgram", a listening SOCK_SEQPACKET one for "unixpacket"),
// and the same address. For the IP networks an empty host matches any
// unspecified address ("0.0.0.0" or "[::]") of the network's families; an
// IP host matches that IP; a name is resolved; port 0 never matches (no
// address says which port it was given). For the unix networks the path is
// compared as an absolute path, and "@name" is an abstract address.
//
// It is the matcher socket activation uses for transports named after a
// network of package net, exported for transports that use such addresses
// under another name (a TLS transport keyed by its TCP address).
func matchSocketAddress(network, address string, c syscall.Conn) bool {
	var want struct {
		typ       int
		families  []int
		listening bool
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
		want.typ, want.listening = unix.SOCK_STREAM, true
		if network[:3] == "udp" {
			want.typ, want.listening = unix.SOCK_DGRAM, false
		}
		switch network[3:] {
		case "4":
			want.families = []int{unix.AF_INET}
		case "6":
			want.families = []int{unix.AF_INET6}
		default:
			want.families = []int{unix.AF_INET, unix.AF_INET6}
		}
	case "unix":
		want.typ, want.families, want.listening = unix.SOCK_STREAM, []int{unix.AF_UNIX}, true
	case "unixpacket":
		want.typ, want.families, want.listening = unix.SOCK_SEQPACKET, []int{unix.AF_UNIX}, true
	case "unixgram":
		want.typ, want.families = unix.SOCK_DGRAM, []int{unix.AF_UNIX}
	default:
		return false
	}
	s, ok := inspectSocket(c)
	if !ok || s.typ != want.typ || (want.listening && !s.listening) {
		return false
	}
	family := -1
	switch s.addr.(type) {
	case *unix.SockaddrInet4:
		family = unix.AF_INET
	case *unix.SockaddrInet6:
		family = unix.AF_INET6
	case *unix.SockaddrUnix:
		family = unix.AF_UNIX
	}
	familyOK := false
	for _, f := range want.families {
		familyOK = familyOK || f == family
	}
	if !familyOK {
		return false
	}
	if sa, ok := s.addr.(*unix.SockaddrUnix); ok {
		return matchUnixPath(address, sa.Name)
	}
	return matchInet(network, address, s.addr)
}

func matchInet(network, address string, sa unix.Sockaddr) bool {
	var (
		ip   net.IP
		port int
	)
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		ip, port = net.IP(sa.Addr[:]), sa.Port
	case *unix.SockaddrInet6:
		ip, port = net.IP(sa.Addr[:]), sa.Port
	default:
		return false
	}
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	p, err := net.LookupPort(network, service)
	if err != nil || p == 0 || p != port {
		return false
	}
	if host == "" {
		return ip.IsUnspecified()
	}
	if h, _, ok := strings.Cut(host, "%"); ok {
		host = h // the zone does not change which address is bound
	}
	if want := net.ParseIP(host); want != nil {
		return want.Equal(ip)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return false
	}
	for _, want := range ips {
		if want.Equal(ip) {
			return true
		}
	}
	return false
}

func matchUnixPath(address, bound string) bool {
	if address == "" || bound == "" {
		return false
	}
	if strings.HasPrefix(address, "@") || strings.HasPrefix(bound, "@") {
		return address == bound
	}
	a, err1 := filepath.Abs(address)
	b, err2 := filepath.Abs(bound)
	return err1 == nil && err2 == nil && a == b
}

type socketInfo struct {
	typ       int
	listening bool
	addr      unix.Sockaddr
}

func inspectSocket(c syscall.Conn) (socketInfo, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return socketInfo{}, false
	}
	var (
		s    socketInfo
		serr error
	)
	err = rc.Control(func(fd uintptr) {
		if s.typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE); serr != nil {
			return
		}
		if s.addr, serr = unix.Getsockname(int(fd)); serr != nil {
			return
		}
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		s.listening = err == nil && v != 0
	})
	return s, err == nil && serr == nil && s.addr != nil
}

// describeSocket is a socket's kind and address for the log.
func describeSocket(f *os.File) string {
	s, ok := inspectSocket(f)
	if !ok {
		return "not a socket"
	}
	kind := map[int]string{unix.SOCK_STREAM: "stream", unix.SOCK_DGRAM: "datagram", unix.SOCK_SEQPACKET: "seqpacket"}[s.typ]
	if kind == "" {
		kind = "socket"
	}
	if s.listening {
		kind = "listening " + kind
	}
	switch sa := s.addr.(type) {
	case *unix.SockaddrInet4:
		return kind + " " + net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
	case *unix.SockaddrInet6:
		return kind + " " + net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port))
	case *unix.SockaddrUnix:
		return kind + " unix " + sa.Name
	}
	return kind
}
