package udp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/tableflip-go/tableflip/internal/fdutil"
	"github.com/tableflip-go/tableflip/tableflip"
)

func init() {
	for _, network := range []string{"udp", "udp4", "udp6"} {
		tableflip.MustRegister(transport(network))
	}
}

// ListenConfig creates UDP sockets that survive upgrades. Its zero value
// is usable.
type ListenConfig struct {
	// Config is used when the socket is created rather than inherited.
	// Its Control function, if any, runs unchanged (this package sets no
	// socket options of its own). An inherited socket keeps the options
	// its creator set.
	Config net.ListenConfig
}

// ListenPacket returns the UDP socket for network ("udp", "udp4" or
// "udp6") and address: the one the previous generation passed under the
// same network and address if there is one, a new one otherwise. Either
// way it is passed on to the next generation.
//
// The key is the address as asked, not as bound, so "127.0.0.1:0" is
// inherited with the port the first generation got.
//
// The socket is shared: while two generations run, each datagram goes to
// whichever reads first. The old generation stops reading with
// Server.Drain, answers what it has read, and exits; the new one reads
// everything after that.
func (lc *ListenConfig) ListenPacket(ctx context.Context, fds tableflip.Fds, network, address string) (*net.UDPConn, error) {
	family := 0
	switch network {
	case "udp":
	case "udp4":
		family = syscall.AF_INET
	case "udp6":
		family = syscall.AF_INET6
	default:
		return nil, fmt.Errorf("udp: unknown network %q (want udp, udp4 or udp6)", network)
	}
	f, _, err := fds.Inherit(network, address)
	switch {
	case err == nil:
		defer f.Close()
		// Check the file before net.FilePacketConn, which takes a TCP
		// socket too or fails with a bare EINVAL.
		err := checkKind(f, family)
		var pc net.PacketConn
		if err == nil {
			pc, err = net.FilePacketConn(f)
		}
		if err != nil {
			// Not what the key names: the next generation must not get it
			// either.
			fds.Forget(network, address)
			return nil, fmt.Errorf("udp: inherited %s %s: %w", network, address, err)
		}
		c, ok := pc.(*net.UDPConn)
		if !ok {
			pc.Close()
			fds.Forget(network, address)
			return nil, fmt.Errorf("udp: inherited %s %s: %w: the file is a %T", network, address, ErrWrongKind, pc)
		}
		return c, nil
	case !errors.Is(err, tableflip.ErrNotInherited):
		return nil, fmt.Errorf("udp: %s %s: %w", network, address, err)
	}
	pc, err := lc.Config.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	c := pc.(*net.UDPConn)
	if err := fds.Pass(network, address, c, nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("udp: %s %s: %w", network, address, err)
	}
	return c, nil
}

// ListenPacket is ListenConfig.ListenPacket with the zero configuration.
func ListenPacket(ctx context.Context, fds tableflip.Fds, network, address string) (*net.UDPConn, error) {
	var lc ListenConfig
	return lc.ListenPacket(ctx, fds, network, address)
}

// ErrWrongKind is returned when the file inherited under a key is not a
// UDP socket of the family the key's network names.
var ErrWrongKind = errors.New("udp: inherited file is not the socket its key names")

func checkKind(f *os.File, family int) error {
	info, err := fdutil.Inspect(f)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWrongKind, err)
	}
	if info.Family != syscall.AF_INET && info.Family != syscall.AF_INET6 {
		return fmt.Errorf("%w: not an IP socket (address family %d)", ErrWrongKind, info.Family)
	}
	if info.Type != syscall.SOCK_DGRAM {
		return fmt.Errorf("%w: a %s socket, not a datagram one", ErrWrongKind, typeName(info.Type))
	}
	if family != 0 && info.Family != family {
		return fmt.Errorf("%w: an %s socket, want %s", ErrWrongKind, familyName(info.Family), familyName(family))
	}
	return nil
}

func typeName(t int) string {
	if t == syscall.SOCK_STREAM {
		return "stream"
	}
	return "type-" + strconv.Itoa(t)
}

func familyName(f int) string {
	switch f {
	case syscall.AF_INET:
		return "IPv4"
	case syscall.AF_INET6:
		return "IPv6"
	}
	return "family-" + strconv.Itoa(f)
}

type transport string

func (t transport) Name() string { return string(t) }

func (t transport) Open(ctx context.Context, fds tableflip.Fds, address string) (io.Closer, error) {
	c, err := ListenPacket(ctx, fds, string(t), address)
	if err != nil {
		return nil, err
	}
	return c, nil
}
