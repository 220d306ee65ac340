package tcp

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/tableflip-go/tableflip/internal/fdutil"
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
	f, _, err := fds.Inherit(network, address)
	switch {
	case err == nil:
		defer f.Close()
		ln, err := net.FileListener(f)
		if err == nil {
			err = checkListener(ln)
			if err != nil {
				ln.Close()
			}
		} else {
			err = describe(f, err)
		}
		if err != nil {
			// Not passed on either: no generation can use it as this key.
			fds.Forget(network, address)
			return nil, fmt.Errorf("tcp: inherited %s %s: %w", network, address, err)
		}
		return ln, nil
	case !isNotInherited(err):
		return nil, fmt.Errorf("tcp: %s %s: %w", network, address, err)
	}
	ln, err := lc.Config.Listen(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("tcp: %w", err)
	}
	if err := fds.Pass(network, address, ln.(*net.TCPListener), nil); err != nil {
		ln.Close()
		return nil, fmt.Errorf("tcp: %s %s: %w", network, address, err)
	}
	return ln, nil
}

// Listen is ListenConfig.Listen with the zero configuration.
func Listen(ctx context.Context, fds tableflip.Fds, network, address string) (net.Listener, error) {
	var lc ListenConfig
	return lc.Listen(ctx, fds, network, address)
}

func checkListener(ln net.Listener) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("the file is a %T, not a TCP listener", ln)
	}
	// net.FileListener already refused anything but a stream socket.
	listening, err := fdutil.Listening(tl)
	if err != nil {
		return err
	}
	if !listening {
		return fmt.Errorf("the socket is not listening")
	}
	return nil
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

func (t transport) Open(ctx context.Context, fds tableflip.Fds, address string) (io.Closer, error) {
	return Listen(ctx, fds, string(t), address)
}
