package udp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/tableflip-go/tableflip/internal/fdutil"
	"github.com/tableflip-go/tableflip/internal/inherit"
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
	fromFile := func(f *os.File) (*net.UDPConn, error) { return fileConn(f, family) }
	return inherit.OrCreate(fds, "udp", network, address, fromFile, func() (*net.UDPConn, error) {
		pc, err := lc.Config.ListenPacket(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return pc.(*net.UDPConn), nil
	})
}

// ListenPacket is ListenConfig.ListenPacket with the zero configuration.
func ListenPacket(ctx context.Context, fds tableflip.Fds, network, address string) (*net.UDPConn, error) {
	var lc ListenConfig
	return lc.ListenPacket(ctx, fds, network, address)
}

// ErrWrongKind is returned when the file inherited under a key is not a
// UDP socket of the family the key's network names.
var ErrWrongKind = errors.New("udp: inherited file is not the socket its key names")

// fileConn returns the UDP socket f is, if it is one of family (either if
// family is 0).
func fileConn(f *os.File, family int) (*net.UDPConn, error) {
	// Check the file before net.FilePacketConn, which takes a TCP socket
	// too or fails with a bare EINVAL.
	if err := checkKind(f, family); err != nil {
		return nil, err
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	c, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("%w: the file is a %T", ErrWrongKind, pc)
	}
	return c, nil
}

func checkKind(f *os.File, family int) error {
	info, err := fdutil.Inspect(f)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWrongKind, err)
	}
	ip := info.Family == syscall.AF_INET || info.Family == syscall.AF_INET6
	if !ip || info.Type != syscall.SOCK_DGRAM || (family != 0 && info.Family != family) {
		return fmt.Errorf("%w: got %s", ErrWrongKind, info)
	}
	return nil
}

type transport string

func (t transport) Name() string { return string(t) }

func (t transport) Kind() tableflip.Kind { return tableflip.KindPacketConn }

func (t transport) Open(ctx context.Context, fds tableflip.Fds, address string) (io.Closer, error) {
	c, err := ListenPacket(ctx, fds, string(t), address)
	if err != nil {
		return nil, err
	}
	return c, nil
}
