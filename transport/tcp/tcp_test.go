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
	if _, err := tableflip.ListenPacket(context.Background(), u, "tcp://127.0.0.1:0"); err == nil {
		t.Fatal("a TCP listener returned as a PacketConn")
	}
}
