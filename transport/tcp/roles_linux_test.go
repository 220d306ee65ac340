package tcp_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

var roles = map[string]func() int{"tcpserver": serverMain}

// serverMain listens on every TCP network, then upgrades itself once. Each
// generation prints its addresses and whether its Control function ran.
func serverMain() int {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		return proctest.Fatal("new", err)
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
			return proctest.Fatal("udp", err)
		}
		upg.Pass("tcp", "127.0.0.1:9", pc.(*net.UDPConn), nil)
		pc.Close()
	}
	if upg.HasParent() && os.Getenv("TFTEST_MODE") == "wrong-kind" {
		_, err := tcp.Listen(ctx, upg, "tcp", "127.0.0.1:9")
		fmt.Printf("WRONGKIND pid=%d err=%v\n", os.Getpid(), err)
	}
	if err := upg.Ready(); err != nil {
		return proctest.Fatal("ready", err)
	}
	fmt.Printf("READY pid=%d gen=%d control=%d %s\n", os.Getpid(), upg.Generation(), controlled, strings.Join(addrs, " "))
	if !upg.HasParent() {
		if _, err := upg.Upgrade(ctx); err != nil {
			return proctest.Fatal("upgrade", err)
		}
	}
	return 0
}
