package tcp_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

func TestUnknownNetwork(t *testing.T) {
	t.Parallel()
	u := tablefliptest.New(nil)
	defer u.Stop()
	if _, err := tcp.Listen(context.Background(), u, "udp", ":0"); err == nil || !strings.Contains(err.Error(), `tcp: unknown network "udp"`) {
		t.Fatalf("got %v", err)
	}
	_, err := tableflip.Listen(context.Background(), u, "tcpx://:0")
	if !errors.Is(err, tableflip.ErrUnknownTransport) || !strings.Contains(err.Error(), "tcp4") {
		t.Fatalf("unknown scheme: %v", err)
	}
}

func TestNameBased(t *testing.T) {
	t.Parallel()
	u := tablefliptest.New(nil)
	defer u.Stop()
	ln, err := tableflip.Listen(context.Background(), u, "tcp4://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, ok := ln.(*net.TCPListener); !ok {
		t.Fatalf("%T", ln)
	}
	_, err = tableflip.ListenPacket(context.Background(), u, "tcp://127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), `"tcp://127.0.0.1:0" opens a net.Listener, not a net.PacketConn`) {
		t.Fatalf("a TCP listener asked for as a PacketConn: %v", err)
	}
	// Refused before anything was created: nothing is passed on under the
	// key, so the listener can still be opened.
	ln2, err := tableflip.Listen(context.Background(), u, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatalf("after the refused ListenPacket: %v", err)
	}
	ln2.Close()
}
