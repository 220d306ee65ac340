// Command traced is the HTTP server of examples/http (tableflip-go, -impl
// ours) or of bench/servers/anchor (cloudflare/tableflip, -impl anchor)
// with timestamps: each generation prints, on stderr, one line per step of
// an upgrade, "T <event> <pid> <unix ns>", so that the benchmark can split
// the time between SIGHUP and the new generation's ready:
//
//	sighup      the parent's signal handler got SIGHUP
//	main        the child's main started (after exec and the Go runtime)
//	new         the child's New returned (it has its files)
//	listen      the child has claimed its listener and serves
//	ready-call  the child calls Ready
//	ready-done  Ready returned
//	upgraded    the parent's Upgrade returned
//
// With BENCH_TRACE=folder each generation also writes a runtime/trace to
// folder/trace.<pid> (go tool trace reads it).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/trace"
	"strconv"
	"syscall"
	"time"

	cf "github.com/cloudflare/tableflip"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

var pid = os.Getpid()

func mark(ev string) {
	fmt.Fprintf(os.Stderr, "T %s %d %d\n", ev, pid, time.Now().UnixNano())
}

func main() {
	mark("main")

	impl := flag.String("impl", "ours", "ours or anchor")
	addr := flag.String("addr", "127.0.0.1:8080", "TCP `host:port`")
	pidFile := flag.String("pidfile", "", "pid `file`")
	flag.Parse()
	if dir := os.Getenv("BENCH_TRACE"); dir != "" {
		if f, err := os.Create(filepath.Join(dir, "trace."+strconv.Itoa(pid))); err == nil {
			trace.Start(f)
			defer f.Close()
			defer trace.Stop()
		}
	}
	var err error
	if *impl == "anchor" {
		err = anchor(*addr, *pidFile)
	} else {
		err = ours(*addr, *pidFile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d\n", pid)
	})
}

func signals() chan os.Signal {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	return sig
}

func ours(addr, pidFile string) error {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile})
	if err != nil {
		return err
	}
	defer upg.Stop()
	mark("new")
	ln, err := tcp.Listen(context.Background(), upg, "tcp", addr)
	if err != nil {
		upg.Fail(err)
		return err
	}
	srv := drain.New(&http.Server{Handler: handler(), ReadHeaderTimeout: 10 * time.Second}, drain.Options{})
	go srv.Serve(ln)
	mark("listen")
	sig := signals()
	mark("ready-call")
	if err := upg.Ready(); err != nil {
		return err
	}
	mark("ready-done")
	for done := false; !done; {
		select {
		case s := <-sig:
			if s != syscall.SIGHUP {
				upg.Stop()
				done = true
				continue
			}
			mark("sighup")
			go func() {
				upg.Upgrade(context.Background())
				mark("upgraded")
			}()
		case <-upg.Exit():
			done = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Drain(ctx)
}

func anchor(addr, pidFile string) error {
	upg, err := cf.New(cf.Options{PIDFile: pidFile})
	if err != nil {
		return err
	}
	defer upg.Stop()
	mark("new")
	var ln net.Listener
	if ln, err = upg.Listen("tcp", addr); err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	mark("listen")
	sig := signals()
	go func() {
		for s := range sig {
			if s != syscall.SIGHUP {
				upg.Stop()
				continue
			}
			mark("sighup")
			upg.Upgrade()
			mark("upgraded")
		}
	}()
	mark("ready-call")
	if err := upg.Ready(); err != nil {
		return err
	}
	mark("ready-done")
	<-upg.Exit()
	time.AfterFunc(30*time.Second, func() { os.Exit(1) })
	return srv.Shutdown(context.Background())
}
