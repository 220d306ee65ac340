package tcp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

func TestMain(m *testing.M) {
	if os.Getenv(proctest.RoleEnv) == "tcpserver" {
		os.Exit(serverMain())
	}
	proctest.SetSubreaper()
	goleak.VerifyTestMain(m)
}

// serverMain listens on every TCP network, then upgrades itself once. Each
// generation prints its addresses and whether its Control function ran.
func serverMain() int {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		fmt.Println("FATAL", err)
		return 1
	}
	defer upg.Stop()
	ctx := context.Background()
	controlled := 0
	lc := tcp.ListenConfig{Config: net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		controlled++
		return nil
	}}}
	var addrs []string
	for _, na := range [][2]string{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}, {"tcp", "localhost:0"}} {
		ln, err := lc.Listen(ctx, upg, na[0], na[1])
		if err != nil {
			fmt.Printf("ERR pid=%d %v\n", os.Getpid(), err)
			return 1
		}
		defer ln.Close()
		addrs = append(addrs, na[0]+"="+ln.Addr().String())
	}
	if os.Getenv("TFTEST_MODE") == "wrong-kind" && !upg.HasParent() {
		// Pass a UDP socket under a TCP key: the child must refuse it.
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("FATAL", err)
			return 1
		}
		upg.Pass("tcp", "127.0.0.1:9", pc.(*net.UDPConn), nil)
		pc.Close()
	}
	if upg.HasParent() && os.Getenv("TFTEST_MODE") == "wrong-kind" {
		_, err := tcp.Listen(ctx, upg, "tcp", "127.0.0.1:9")
		fmt.Printf("WRONGKIND pid=%d err=%v\n", os.Getpid(), err)
	}
	if err := upg.Ready(); err != nil {
		fmt.Println("FATAL", err)
		return 1
	}
	fmt.Printf("READY pid=%d gen=%d control=%d %s\n", os.Getpid(), upg.Generation(), controlled, strings.Join(addrs, " "))
	if !upg.HasParent() {
		if _, err := upg.Upgrade(ctx); err != nil {
			fmt.Printf("FATAL upgrade: %v\n", err)
			return 1
		}
	}
	return 0
}

func readyFields(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestInheritAllNetworks(t *testing.T) {
	p := proctest.Start(t, "tcpserver")
	first := readyFields(p.Expect("READY "))
	second := readyFields(p.Expect("READY "))
	if first["control"] != "3" {
		t.Errorf("the caller's Control ran %s times in the first generation, want 3", first["control"])
	}
	if second["control"] != "0" {
		t.Errorf("Control ran %s times on inherited sockets, want 0", second["control"])
	}
	for _, n := range []string{"tcp4", "tcp6", "tcp"} {
		if first[n] == "" || strings.HasSuffix(first[n], ":0") {
			t.Fatalf("%s: no port assigned: %q", n, first[n])
		}
		if first[n] != second[n] {
			t.Errorf("%s: %s in the first generation, %s in the second", n, first[n], second[n])
		}
	}
	if first["pid"] == second["pid"] {
		t.Error("no new process")
	}
}

func TestInheritedWrongKind(t *testing.T) {
	p := proctest.Start(t, "tcpserver", "TFTEST_MODE=wrong-kind")
	line := p.Expect("WRONGKIND ")
	if !strings.Contains(line, "tcp: inherited tcp 127.0.0.1:9: not a TCP listener (ipv4 datagram socket)") {
		t.Fatalf("a UDP socket claimed as a TCP listener: %s", line)
	}
	p.Expect("READY ")
}

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
