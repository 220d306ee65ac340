package udp_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	"github.com/tableflip-go/tableflip/transport/udp"
)

// An echo service, and the shutdown of one generation: Drain stops reading
// and returns once every datagram read has been answered. Here
// tablefliptest stands in for tableflip.New, so the example runs anywhere;
// with a real Upgrader, <-upg.Exit() tells when the next generation, which
// shares the socket, is ready.
func ExampleServer() {
	ctx := context.Background()
	upg := tablefliptest.New(nil)
	conn, err := udp.ListenPacket(ctx, upg, "udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	srv := &udp.Server{Handler: func(c *net.UDPConn, p []byte, from netip.AddrPort) {
		c.WriteToUDPAddrPort(append([]byte("echo "), p...), from)
	}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(conn) }()
	upg.Ready()

	client, _ := net.Dial("udp", conn.LocalAddr().String())
	defer client.Close()
	client.Write([]byte("hello"))
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, _ := client.Read(buf)
	fmt.Println(string(buf[:n]))

	// What a generation does on <-upg.Exit():
	if err := srv.Drain(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println(<-served)
	upg.Stop()
	// Output:
	// echo hello
	// udp: server drained
}
