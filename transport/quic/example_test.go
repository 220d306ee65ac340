package tfquic_test

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tableflip-go/tableflip/tableflip"
	tfquic "github.com/tableflip-go/tableflip/transport/quic"
)

// A QUIC server whose connections survive upgrades: the transport is made
// before Ready (it inherits the socket and the forwarding sockets), the
// listener after (a generation reads nothing before it has committed).
func Example() {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		panic(err)
	}
	defer upg.Stop()
	t, err := tfquic.New(context.Background(), upg, "udp", "127.0.0.1:4433", nil)
	if err != nil {
		upg.Fail(err)
		return
	}
	defer t.Close()
	if err := upg.Ready(); err != nil {
		return
	}
	ln, err := t.Listen(&tls.Config{ /* certificates, NextProtos */ }, &quic.Config{})
	if err != nil {
		return
	}
	go func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			_ = conn // serve it
		}
	}()
	<-upg.Exit()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Drain(ctx)
}
