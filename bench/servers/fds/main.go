// Command fds measures what each inherited file costs an upgrade: it
// listens on -fds TCP addresses (127.0.x.y:0, each its own key) with this
// project's tableflip (-impl ours) or with cloudflare/tableflip v1.2.3
// (-impl anchor), becomes ready, and upgrades to a new generation of itself
// on SIGHUP, which claims every listener again. The benchmark times SIGHUP
// until the pid file names the new generation.
//
// Each listener is closed once claimed: the upgrader keeps its own copy for
// the next generation, and the open file limit (20,000 here) must hold two
// generations of 10,000.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	cf "github.com/cloudflare/tableflip"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

func main() {
	impl := flag.String("impl", "ours", "ours or anchor")
	n := flag.Int("fds", 1, "number of TCP listeners")
	pidFile := flag.String("pidfile", "", "pid `file`")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("fds %s %d ", *impl, os.Getpid()))
	var err error
	switch *impl {
	case "ours":
		err = ours(*n, *pidFile)
	case "anchor":
		err = anchor(*n, *pidFile)
	default:
		err = fmt.Errorf("-impl %q: want ours or anchor", *impl)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// Addr is the i-th listening address: a loopback address of its own, port 0.
func Addr(i int) string { return fmt.Sprintf("127.0.%d.%d:0", 1+i/250, 1+i%250) }

func signals() chan os.Signal {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	return sig
}

func ours(n int, pidFile string) error {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile})
	if err != nil {
		return err
	}
	defer upg.Stop()
	for i := range n {
		ln, err := tcp.Listen(context.Background(), upg, "tcp", Addr(i))
		if err != nil {
			upg.Fail(err)
			return err
		}
		ln.Close()
	}
	return serve(upg.Ready, func() error {
		_, err := upg.Upgrade(context.Background())
		return err
	}, upg.Exit())
}

func anchor(n int, pidFile string) error {
	upg, err := cf.New(cf.Options{PIDFile: pidFile, UpgradeTimeout: time.Minute})
	if err != nil {
		return err
	}
	defer upg.Stop()
	for i := range n {
		ln, err := upg.Listen("tcp", Addr(i))
		if err != nil {
			return err
		}
		ln.Close()
	}
	return serve(upg.Ready, upg.Upgrade, upg.Exit())
}

// serve installs the signal handlers, calls ready, then upgrades on each
// SIGHUP until SIGTERM or exit.
func serve(ready, upgrade func() error, exit <-chan struct{}) error {
	sig := signals()
	if err := ready(); err != nil {
		return err
	}
	for {
		select {
		case s := <-sig:
			if s != syscall.SIGHUP {
				return nil
			}
			go func() {
				if err := upgrade(); err != nil {
					log.Println("upgrade:", err)
				}
			}()
		case <-exit:
			return nil
		}
	}
}
