//go:build linux

package loadtest

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenerInode returns the inode of the one socket of this network
// namespace that listens on address, read from /proc/net: network "tcp"
// with address "host:port" (IPv4 and IPv6), or "unix" with a socket path
// ("@name" for an abstract one). Two sockets listening on the same address
// (SO_REUSEPORT) are an error: the point is to prove there is one socket
// that every generation shares.
//
// Compare its result before and after upgrades, and check with
// HoldsSocket that the serving generation holds it.
func ListenerInode(network, address string) (uint64, error) {
	var inodes []uint64
	var err error
	switch network {
	case "tcp", "tcp4", "tcp6":
		inodes, err = tcpListeners(address)
	case "unix":
		inodes, err = unixListeners(address)
	default:
		return 0, fmt.Errorf("loadtest: listener inode: unknown network %q", network)
	}
	if err != nil {
		return 0, err
	}
	switch len(inodes) {
	case 0:
		return 0, fmt.Errorf("%w: no socket listens on %s %s", ErrNoListener, network, address)
	case 1:
		return inodes[0], nil
	}
	return 0, fmt.Errorf("%w: %d sockets listen on %s %s (inodes %v), want one", ErrManyListeners, len(inodes), network, address, inodes)
}

func tcpListeners(address string) ([]uint64, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("loadtest: port of %q: %w", address, err)
	}
	want := net.ParseIP(host) // nil: any address
	var inodes []uint64
	err = scanTCPListeners(func(ip net.IP, p uint16, inode uint64) {
		if uint64(p) == port && (want == nil || ip.Equal(want)) {
			inodes = append(inodes, inode)
		}
	})
	return inodes, err
}

// scanTCPListeners calls fn for every listening TCP socket of the network
// namespace. It asks the kernel for listening sockets only (sock_diag
// netlink), because /proc/net/tcp lists every socket, TIME_WAIT ones
// included: tens of thousands of lines, a second to read, under a load of
// new connections. It falls back to /proc/net/tcp where netlink is refused.
func scanTCPListeners(fn func(ip net.IP, port uint16, inode uint64)) error {
	if err := diagTCPListeners(fn); err == nil {
		return nil
	}
	return procTCPListeners(fn)
}

func procTCPListeners(fn func(ip net.IP, port uint16, inode uint64)) error {
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		err := scanProc(file, func(f []string) {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "0A" { // TCP_LISTEN
				return
			}
			ipHex, pHex, ok := strings.Cut(f[1], ":")
			if !ok {
				return
			}
			p, err := strconv.ParseUint(pHex, 16, 16)
			ip := procIP(ipHex)
			ino, ierr := strconv.ParseUint(f[9], 10, 64)
			if err == nil && ip != nil && ierr == nil {
				fn(ip, uint16(p), ino)
			}
		})
		if err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// diagTCPListeners dumps the listening TCP sockets with a
// SOCK_DIAG_BY_FAMILY request (linux/inet_diag.h), IPv4 then IPv6.
func diagTCPListeners(fn func(ip net.IP, port uint16, inode uint64)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	const (
		tcpListen   = 10 // TCP_LISTEN in the kernel's state numbering
		reqLen      = unix.SizeofNlMsghdr + 56
		msgLen      = 72 // sizeof(struct inet_diag_msg)
		offSport    = 4
		offSrc      = 8
		offInode    = 68
		nlmsgDone   = unix.NLMSG_DONE
		nlmsgError  = unix.NLMSG_ERROR
		sockDiagReq = unix.SOCK_DIAG_BY_FAMILY
	)
	buf := make([]byte, 64<<10)
	for seq, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, reqLen)
		binary.NativeEndian.PutUint32(req[0:], reqLen)
		binary.NativeEndian.PutUint16(req[4:], sockDiagReq)
		binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
		binary.NativeEndian.PutUint32(req[8:], uint32(seq+1))
		// struct inet_diag_req_v2: family, protocol, ext, pad, states, id.
		req[16], req[17] = family, unix.IPPROTO_TCP
		binary.NativeEndian.PutUint32(req[20:], 1<<tcpListen)
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
	recv:
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				return err
			}
			for _, m := range msgs {
				switch m.Header.Type {
				case nlmsgDone:
					break recv
				case nlmsgError:
					return fmt.Errorf("loadtest: sock_diag: netlink error")
				}
				d := m.Data
				if len(d) < msgLen {
					continue
				}
				var ip net.IP
				if d[0] == unix.AF_INET {
					ip = net.IP(append([]byte(nil), d[offSrc:offSrc+4]...))
				} else {
					ip = net.IP(append([]byte(nil), d[offSrc:offSrc+16]...))
				}
				port := binary.BigEndian.Uint16(d[offSport:])
				fn(ip, port, uint64(binary.NativeEndian.Uint32(d[offInode:])))
			}
		}
	}
	return nil
}

// procIP decodes an address of /proc/net/tcp{,6}: 32-bit words in host
// (little-endian) order.
func procIP(s string) net.IP {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b)
}

func unixListeners(path string) ([]uint64, error) {
	var inodes []uint64
	err := scanUnixListeners(func(p string, inode uint64) {
		if p == path {
			inodes = append(inodes, inode)
		}
	})
	return inodes, err
}

// scanUnixListeners calls fn for every listening unix socket with a path
// (or an abstract "@name") of the network namespace.
func scanUnixListeners(fn func(path string, inode uint64)) error {
	return scanProc("/proc/net/unix", func(f []string) {
		// Num RefCount Protocol Flags Type St Inode Path
		if len(f) < 8 {
			return
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&0x10000 == 0 { // __SO_ACCEPTCON: listening
			return
		}
		if ino, err := strconv.ParseUint(f[6], 10, 64); err == nil {
			fn(f[7], ino)
		}
	})
}

// Listener is a listening socket that a process holds.
type Listener struct {
	// Network is "tcp" or "unix".
	Network string
	// Addr is "ip:port" for TCP, the path (or "@name") for unix.
	Addr string
	// Inode identifies the socket: the same inode in two processes is
	// the same socket.
	Inode uint64
}

// Listeners returns the listening TCP and unix sockets that pid holds,
// TCP first. A server started with port 0 reveals its port this way,
// with no race for a free port.
func Listeners(pid int) ([]Listener, error) {
	held, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	var out []Listener
	err = scanTCPListeners(func(ip net.IP, port uint16, inode uint64) {
		if held[inode] {
			out = append(out, Listener{"tcp", net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), inode})
		}
	})
	if err != nil {
		return nil, err
	}
	err = scanUnixListeners(func(path string, inode uint64) {
		if held[inode] {
			out = append(out, Listener{"unix", path, inode})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	return out, nil
}

func scanProc(file string, line func(fields []string)) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		line(strings.Fields(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("loadtest: read %s: %w", file, err)
	}
	return nil
}

// HoldsSocket reports whether pid has the socket with inode open, from the
// links in /proc/<pid>/fd.
func HoldsSocket(pid int, inode uint64) (bool, error) {
	held, err := socketInodes(pid)
	return held[inode], err
}

// socketInodes returns the inodes of the sockets pid has open.
func socketInodes(pid int) (map[uint64]bool, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	held := make(map[uint64]bool)
	for _, e := range ents {
		l, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if s, ok := strings.CutPrefix(l, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				held[ino] = true
			}
		}
	}
	return held, nil
}
