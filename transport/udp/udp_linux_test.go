package udp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	"github.com/tableflip-go/tableflip/transport/udp"
)

// TestPortZeroKeptAcrossGenerations: "127.0.0.1:0" is inherited under the
// same key, with the port the first generation got.
func TestPortZeroKeptAcrossGenerations(t *testing.T) {
	p := proctest.Start(t, "portzero", "TFTEST_GENS=4")
	addr := proctest.Fields(p.Expect("GEN "))["addr"]
	if strings.HasSuffix(addr, ":0") || addr == "" {
		t.Fatalf("first generation bound %q", addr)
	}
	for gen := 2; gen <= 4; gen++ {
		line := p.Expect("GEN ")
		if f := proctest.Fields(line); f["gen"] != strconv.Itoa(gen) || f["addr"] != addr {
			t.Fatalf("%s: want gen=%d addr=%s", line, gen, addr)
		}
	}
}

// TestInheritedWrongKind: a TCP listener, or a UDP socket of the other
// family, passed under a udp4 key is refused with ErrWrongKind, and the
// child holds no extra fd afterwards.
func TestInheritedWrongKind(t *testing.T) {
	for _, pass := range []string{"tcp", "udp6"} {
		t.Run(pass, func(t *testing.T) {
			if pass == "udp6" {
				if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					c.Close()
				}
			}
			p := proctest.Start(t, "wrongkind", "TFTEST_PASS="+pass)
			p.ExpectRefused("inherited file is not the socket its key names")
		})
	}
}

// dup returns a second *net.UDPConn on c's socket, as the next generation
// holds it: another descriptor, another poller entry.
func dup(t *testing.T, c *net.UDPConn) *net.UDPConn {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return pc.(*net.UDPConn)
}

// dial returns a client of c, closed when the test ends.
func dial(t *testing.T, c *net.UDPConn) *net.UDPConn {
	t.Helper()
	client, err := net.DialUDP("udp4", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func listen(t *testing.T) (*net.UDPConn, *tablefliptest.Upgrader) {
	t.Helper()
	upg := tablefliptest.New(nil)
	c, err := udp.ListenPacket(context.Background(), upg, "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); upg.Stop() })
	return c, upg
}

// TestDeadlineIsPerDescriptor verifies what Drain relies on: a read
// deadline set on one descriptor of a socket does not stop reads through
// another descriptor of the same socket.
func TestDeadlineIsPerDescriptor(t *testing.T) {
	old, _ := listen(t)
	next := dup(t, old)
	defer next.Close()
	old.SetReadDeadline(time.Unix(1, 0))
	if _, _, err := old.ReadFromUDPAddrPort(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on the descriptor with the deadline: %v", err)
	}
	client := dial(t, old)
	client.Write([]byte("x"))
	next.SetReadDeadline(time.Now().Add(proctest.Timeout))
	buf := make([]byte, 16)
	n, _, err := next.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "x" {
		t.Fatalf("read on the other descriptor: %q %v", buf[:n], err)
	}
}

// TestDrainAnswersWhatItRead: Drain waits until the datagram being handled
// is answered, reads nothing more, and leaves the rest in the socket for
// the next generation.
func TestDrainAnswersWhatItRead(t *testing.T) {
	conn, _ := listen(t)
	entered := make(chan string, 16)
	release := make(chan struct{})
	srv := &udp.Server{Handler: func(c *net.UDPConn, p []byte, from netip.AddrPort) {
		entered <- string(p)
		<-release
		c.WriteToUDPAddrPort(append([]byte("old "), p...), from)
	}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(conn) }()

	client := dial(t, conn)
	client.Write([]byte("first"))
	if got := <-entered; got != "first" {
		t.Fatalf("handler got %q", got)
	}
	drained := make(chan error, 1)
	go func() { drained <- srv.Drain(context.Background()) }()
	<-srv.Draining()
	// Datagrams sent once the drain has begun, while the first is being
	// handled: the old generation must not take them.
	for i := 0; i < 5; i++ {
		client.Write([]byte("rest" + strconv.Itoa(i)))
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned while a datagram was being handled: %v", err)
	default:
	}
	close(release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := <-served; !errors.Is(err, udp.ErrDrained) {
		t.Fatalf("Serve returned %v, want ErrDrained", err)
	}
	if err := srv.Serve(conn); !errors.Is(err, udp.ErrDrained) {
		t.Fatalf("Serve after Drain: %v", err)
	}
	select {
	case got := <-entered:
		t.Fatalf("handler got %q after the drain began", got)
	default:
	}
	client.SetReadDeadline(time.Now().Add(proctest.Timeout))
	buf := make([]byte, 64)
	n, err := client.Read(buf)
	if err != nil || string(buf[:n]) != "old first" {
		t.Fatalf("answer %q %v, want \"old first\"", buf[:n], err)
	}
	// The next generation reads the rest through its own descriptor.
	next := dup(t, conn)
	defer next.Close()
	next.SetReadDeadline(time.Now().Add(proctest.Timeout))
	for i := 0; i < 5; i++ {
		n, _, err := next.ReadFromUDPAddrPort(buf)
		if want := "rest" + strconv.Itoa(i); err != nil || string(buf[:n]) != want {
			t.Fatalf("next generation read %q %v, want %q", buf[:n], err, want)
		}
	}
}

// TestDrainTimeout: a handler that does not finish makes Drain return
// ctx's error; Serve returns once the handler does.
func TestDrainTimeout(t *testing.T) {
	conn, _ := listen(t)
	release := make(chan struct{})
	entered := make(chan struct{})
	srv := &udp.Server{Handler: func(c *net.UDPConn, p []byte, from netip.AddrPort) {
		close(entered)
		<-release
	}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(conn) }()
	client := dial(t, conn)
	client.Write([]byte("x"))
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Drain(ctx); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "udp: ") {
		t.Fatalf("Drain with a done context: %v", err)
	}
	close(release)
	if err := <-served; !errors.Is(err, udp.ErrDrained) {
		t.Fatalf("Serve: %v", err)
	}
	if err := srv.Drain(context.Background()); err != nil {
		t.Fatalf("second Drain: %v", err)
	}
}

// TestConcurrentServe: several Serve loops on one conn; Drain stops all.
func TestConcurrentServe(t *testing.T) {
	conn, _ := listen(t)
	srv := &udp.Server{Handler: func(c *net.UDPConn, p []byte, from netip.AddrPort) {
		c.WriteToUDPAddrPort(p, from)
	}}
	served := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() { served <- srv.Serve(conn) }()
	}
	client := dial(t, conn)
	buf := make([]byte, 64)
	for i := 0; i < 100; i++ {
		msg := fmt.Sprint(i)
		client.Write([]byte(msg))
		client.SetReadDeadline(time.Now().Add(proctest.Timeout))
		n, err := client.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("echo %q: %q %v", msg, buf[:n], err)
		}
	}
	if err := srv.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := <-served; !errors.Is(err, udp.ErrDrained) {
			t.Fatalf("Serve: %v", err)
		}
	}
}

func TestNameBased(t *testing.T) {
	ctx := context.Background()
	upg := tablefliptest.New(nil)
	defer upg.Stop()
	for _, uri := range []string{"udp://127.0.0.1:0", "udp4://127.0.0.1:0", "udp6://[::1]:0"} {
		c, err := tableflip.ListenPacket(ctx, upg, uri)
		if err != nil {
			if strings.HasPrefix(uri, "udp6") {
				t.Logf("%s: %v (no IPv6 loopback?)", uri, err)
				continue
			}
			t.Fatalf("%s: %v", uri, err)
		}
		if _, ok := c.(*net.UDPConn); !ok {
			t.Errorf("%s opened a %T", uri, c)
		}
		c.Close()
	}
	if _, err := tableflip.ListenPacket(ctx, upg, "udp://127.0.0.1:0"); !errors.Is(err, tableflip.ErrDuplicate) {
		t.Errorf("a second open under the same key: %v, want ErrDuplicate", err)
	}
	if _, err := udp.ListenPacket(ctx, upg, "tcp", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), `udp: unknown network "tcp"`) {
		t.Errorf("network tcp: %v", err)
	}
}
