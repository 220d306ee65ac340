package udp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/udp"
)

func setup() {
	if err := proctest.SetSubreaper(); err != nil {
		panic(err)
	}
}

func runRole(role string) int {
	switch role {
	case "portzero":
		return portZeroMain()
	case "wrongkind":
		return wrongKindMain()
	}
	fmt.Printf("FATAL unknown role %q\n", role)
	return 2
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
		fmt.Printf("FATAL pid=%d new: %v\n", pid, err)
		return 1
	}
	defer upg.Stop()
	ctx := context.Background()
	c, err := udp.ListenPacket(ctx, upg, "udp", "127.0.0.1:0")
	if err != nil {
		fmt.Printf("FATAL pid=%d listen: %v\n", pid, err)
		return 1
	}
	defer c.Close()
	if err := upg.Ready(); err != nil {
		fmt.Printf("FATAL pid=%d ready: %v\n", pid, err)
		return 1
	}
	fmt.Printf("GEN pid=%d gen=%d addr=%s\n", pid, upg.Generation(), c.LocalAddr())
	if fmt.Sprint(upg.Generation()) == os.Getenv("TFTEST_GENS") {
		return 0
	}
	if _, err := upg.Upgrade(ctx); err != nil {
		fmt.Printf("FATAL pid=%d upgrade: %v\n", pid, err)
		return 1
	}
	return 0
}

// wrongKindMain passes TFTEST_PASS ("tcp" or "udp6") under the key udp4
// 127.0.0.1:0 and upgrades to a child that claims it. The child prints
//
//	CHILD pid=N wrongkind=true fds_before=B fds_after=A err=...
//
// and fails; the parent prints PARENT pid=N childerr=... and exits 0.
func wrongKindMain() int {
	pid := os.Getpid()
	const network, key = "udp4", "127.0.0.1:0"
	upg, err := tableflip.New(tableflip.Options{KillGrace: 2 * time.Second})
	if err != nil {
		fmt.Printf("FATAL pid=%d new: %v\n", pid, err)
		return 1
	}
	defer upg.Stop()
	ctx := context.Background()
	if !upg.HasParent() {
		var c syscall.Conn
		switch os.Getenv("TFTEST_PASS") {
		case "tcp":
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				fmt.Printf("FATAL pid=%d %v\n", pid, err)
				return 1
			}
			defer ln.Close()
			c = ln.(*net.TCPListener)
		case "udp6":
			pc, err := net.ListenPacket("udp6", "[::1]:0")
			if err != nil {
				fmt.Printf("FATAL pid=%d %v\n", pid, err)
				return 1
			}
			defer pc.Close()
			c = pc.(*net.UDPConn)
		}
		if err := upg.Pass(network, key, c, nil); err != nil {
			fmt.Printf("FATAL pid=%d pass: %v\n", pid, err)
			return 1
		}
		if err := upg.Ready(); err != nil {
			fmt.Printf("FATAL pid=%d ready: %v\n", pid, err)
			return 1
		}
		_, err := upg.Upgrade(ctx)
		fmt.Printf("PARENT pid=%d childerr=%q\n", pid, fmt.Sprint(err))
		return 0
	}
	before := countFds()
	c, lerr := udp.ListenPacket(ctx, upg, network, key)
	if lerr == nil {
		c.Close()
	}
	after := countFds()
	fmt.Printf("CHILD pid=%d wrongkind=%v fds_before=%d fds_after=%d err=%v\n", pid,
		errors.Is(lerr, udp.ErrWrongKind), before, after, lerr)
	if lerr == nil {
		lerr = errors.New("ListenPacket succeeded on a wrong kind of file")
	}
	upg.Fail(lerr)
	return 1
}

func countFds() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents) - 1 // the directory being read
}
