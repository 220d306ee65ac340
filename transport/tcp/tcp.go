package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/tableflip-go/tableflip/internal/fdutil"
	"github.com/tableflip-go/tableflip/internal/inherit"
	"github.com/tableflip-go/tableflip/tableflip"
)

func init() {
	for _, network := range []string{"tcp", "tcp4", "tcp6"} {
		tableflip.MustRegister(transport(network))
	}
}

// ListenConfig creates listeners that survive upgrades. Its zero value is
// usable.
type ListenConfig struct {
	// Config is used when the listener is created rather than inherited.
	// Its Control function, if any, runs unchanged: this package adds no
	// socket options of its own, so there is nothing to chain it with and
	// nothing of the caller's is overwritten. An inherited socket keeps the
	// options its creator set.
	Config net.ListenConfig
}

// Listen returns the listener for network ("tcp", "tcp4" or "tcp6") and
// address: the one the previous generation passed under the same network
// and address if there is one, a new one otherwise. Either way it is passed
// on to the next generation.
//
// The key is the address as asked, not as bound, so "127.0.0.1:0" is
// inherited under the same key with the port the first generation got.
func (lc *ListenConfig) Listen(ctx context.Context, fds tableflip.Fds, network, address string) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("tcp: unknown network %q", network)
	}
	ln, err := inherit.OrCreate(fds, "tcp", network, address, fileListener, func() (*net.TCPListener, error) {
		ln, err := lc.Config.Listen(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return ln.(*net.TCPListener), nil
	})
	if err != nil {
		return nil, err // not a nil *net.TCPListener in a non-nil net.Listener
	}
	return ln, nil
}

// Listen is ListenConfig.Listen with the zero configuration.
func Listen(ctx context.Context, fds tableflip.Fds, network, address string) (net.Listener, error) {
	var lc ListenConfig
	return lc.Listen(ctx, fds, network, address)
}

// fileListener returns the listening TCP socket f is, or says what f is
// instead.
func fileListener(f *os.File) (*net.TCPListener, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, describe(f, err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("the file is a %T, not a TCP listener", ln)
	}
	// net.FileListener already refused anything but a stream socket.
	listening, err := fdutil.Listening(tl)
	if err == nil && !listening {
		err = errors.New("the socket is not listening")
	}
	if err != nil {
		tl.Close()
		return nil, err
	}
	return tl, nil
}

// describe says what f is when it is not a TCP listener.
func describe(f *os.File, err error) error {
	info, ierr := fdutil.Inspect(f)
	if ierr != nil {
		return fmt.Errorf("the file is not a socket: %w", ierr)
	}
	return fmt.Errorf("not a TCP listener (%s): %w", info, err)
}

type transport string

func (t transport) Name() string { return string(t) }

func (t transport) Kind() tableflip.Kind { return tableflip.KindListener }

func (t transport) Open(ctx context.Context, fds tableflip.Fds, address string) (io.Closer, error) {
	return Listen(ctx, fds, string(t), address)
}
