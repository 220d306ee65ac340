package udp_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/udp"
)

var roles = map[string]func() int{
	"portzero":  portZeroMain,
	"wrongkind": wrongKindMain,
}

// portZeroMain listens on udp 127.0.0.1:0, prints
//
//	GEN pid=N gen=G addr=A
//
// and upgrades until generation TFTEST_GENS, then stops. Each generation
// drains before it exits.
func portZeroMain() int {
	pid := os.Getpid()
	upg, err := tableflip.New(tableflip.Options{KillGrace: 2 * time.Second})
	if err != nil {
		return proctest.Fatal("new", err)
	}
	defer upg.Stop()
	ctx := context.Background()
	c, err := udp.ListenPacket(ctx, upg, "udp", "127.0.0.1:0")
	if err != nil {
		return proctest.Fatal("listen", err)
	}
	defer c.Close()
	if err := upg.Ready(); err != nil {
		return proctest.Fatal("ready", err)
	}
	fmt.Printf("GEN pid=%d gen=%d addr=%s\n", pid, upg.Generation(), c.LocalAddr())
	if fmt.Sprint(upg.Generation()) == os.Getenv("TFTEST_GENS") {
		return 0
	}
	if _, err := upg.Upgrade(ctx); err != nil {
		return proctest.Fatal("upgrade", err)
	}
	return 0
}

// wrongKindMain passes TFTEST_PASS ("tcp" or "udp6") under the key udp4
// 127.0.0.1:0 and upgrades to a child that claims it with ListenPacket and
// must refuse it (see proctest.PassAndUpgrade and RefuseInherited).
func wrongKindMain() int {
	const network, key = "udp4", "127.0.0.1:0"
	upg, err := tableflip.New(tableflip.Options{KillGrace: 2 * time.Second})
	if err != nil {
		return proctest.Fatal("new", err)
	}
	defer upg.Stop()
	if upg.HasParent() {
		return proctest.RefuseInherited(upg, udp.ErrWrongKind, func() (io.Closer, error) {
			return udp.ListenPacket(context.Background(), upg, network, key)
		})
	}
	c, err := wrongKindFile(os.Getenv("TFTEST_PASS"))
	if err != nil {
		return proctest.Fatal("wrong kind", err)
	}
	defer c.Close()
	return proctest.PassAndUpgrade(upg, network, key, c, nil)
}

// wrongKindFile opens the socket passed under a udp4 key: "tcp", a TCP
// listener, or "udp6", a UDP socket of the other family.
func wrongKindFile(kind string) (proctest.Conn, error) {
	switch kind {
	case "tcp":
		return net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	case "udp6":
		return net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	}
	return nil, fmt.Errorf("unknown TFTEST_PASS %q", kind)
}
