package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"go.uber.org/fx"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Listener provides the net.Listener for uri ("tcp://127.0.0.1:8080",
// "unix:///run/app.sock": any scheme of a registered transport, whose
// package the program imports) as a value named name:
//
//	fxmodule.Listener("http", "tcp://:8080")
//
//	type Params struct {
//		fx.In
//		Listener net.Listener `name:"http"`
//	}
//
// The listener is inherited from the previous generation when it passed
// one under the same address, and created otherwise; either way it is
// passed on to the next generation. It is opened in the constructor, while
// fx.New runs, so it is claimed before Ready closes the inherited files
// nobody claimed. An OnStop hook closes this process's copy (the socket
// stays open in the next generation). Two listeners with one name are an fx
// error; so is an address whose scheme no imported transport handles.
func Listener(name, uri string) fx.Option {
	return provideNamed(name, uri, NewListener)
}

// PacketConn provides the net.PacketConn for uri ("udp://:443",
// "unixgram:///run/app.sock") as a value named name, as Listener does for
// listeners.
func PacketConn(name, uri string) fx.Option {
	return provideNamed(name, uri, NewPacketConn)
}

// provideNamed provides what open returns for uri as a value named name,
// and closes it on stop.
func provideNamed[C io.Closer](name, uri string, open func(fds tableflip.Fds, name, uri string) (C, error)) fx.Option {
	return fx.Provide(fx.Annotate(
		func(fds tableflip.Fds, lc fx.Lifecycle) (C, error) {
			c, err := open(fds, name, uri)
			if err != nil {
				return c, err
			}
			lc.Append(closeHook(c))
			return c, nil
		},
		fx.ResultTags(nameTag(name)),
	))
}

// NewListener opens uri with tableflip.Listen, for the listener called
// name. It is Listener's constructor, usable without fx; the caller closes
// the listener.
func NewListener(fds tableflip.Fds, name, uri string) (net.Listener, error) {
	ln, err := tableflip.Listen(context.Background(), fds, uri)
	if err != nil {
		return nil, fmt.Errorf("fxmodule: listener %q: %w", name, err)
	}
	return ln, nil
}

// NewPacketConn opens uri with tableflip.ListenPacket, for the packet conn
// called name. It is PacketConn's constructor, usable without fx.
func NewPacketConn(fds tableflip.Fds, name, uri string) (net.PacketConn, error) {
	pc, err := tableflip.ListenPacket(context.Background(), fds, uri)
	if err != nil {
		return nil, fmt.Errorf("fxmodule: packet conn %q: %w", name, err)
	}
	return pc, nil
}

func nameTag(name string) string { return fmt.Sprintf("name:%q", name) }

// closeHook closes c on stop. A server that served c may have closed it
// already.
func closeHook(c io.Closer) fx.Hook {
	return fx.Hook{OnStop: func(context.Context) error {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("fxmodule: close %T: %w", c, err)
		}
		return nil
	}}
}
