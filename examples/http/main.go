// Command http is an HTTP server that upgrades itself without failing a
// request: send it SIGHUP and the next generation (the binary on disk now)
// takes over the listening socket while this one drains. SIGTERM stops it.
//
//	go build -o http-example ./examples/http
//	./http-example -addr 127.0.0.1:8080 -pidfile http.pid &
//	curl 127.0.0.1:8080       # pid=4242 generation=1
//	kill -HUP $(cat http.pid)
//	curl 127.0.0.1:8080       # pid=4250 generation=2
//	kill -TERM $(cat http.pid)
//
// Its flags and its answer are a stable contract that tests and the demo
// (examples/demo) rely on: -addr, -pidfile, -socket, and "pid=<pid>" in
// the body of GET /. -control PATH also serves tableflipctl's requests
// (see package tableflip/control).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/internal/example"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/control"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	"github.com/tableflip-go/tableflip/transport/tcp"
	_ "github.com/tableflip-go/tableflip/transport/unix" // registers "unix://"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "serve HTTP on this TCP `host:port`")
	socket := flag.String("socket", "", "serve HTTP on the unix socket at this `path` instead of -addr")
	pidFile := flag.String("pidfile", "", "keep the serving process's pid in this `file`")
	controlPath := flag.String("control", "", "answer tableflipctl's upgrade and stop requests on a unix socket at this `path`")
	logFormat := example.LogFlag(flag.CommandLine)
	flag.Parse()
	os.Exit(example.Run("http", *logFormat, func(log *zap.Logger) error {
		return run(log, *addr, *socket, *pidFile, *controlPath)
	}))
}

func run(log *zap.Logger, addr, socket, pidFile, controlPath string) error {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log})
	if err != nil {
		return err
	}
	defer upg.Stop()

	// The listener is inherited from the previous generation, or created.
	ln, err := listen(upg, addr, socket)
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	upgrade := upg.Upgrade
	if controlPath != "" {
		// Requests come from tableflipctl; a stop request is a SIGTERM.
		// SIGHUP goes through it too: a signal and a request arriving
		// together make one upgrade.
		ctl, err := control.Listen(context.Background(), upg, controlPath, control.Options{})
		if err != nil {
			upg.Fail(err)
			return err
		}
		defer ctl.Close()
		upgrade = func(ctx context.Context) (int, error) {
			pid, _, err := ctl.Upgrade(ctx)
			return pid, err
		}
	}
	pid, gen := os.Getpid(), upg.Generation()
	srv := drain.New(&http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid=%d generation=%d\n", pid, gen)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}, drain.Options{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	// Handle signals before Ready: from then on, anyone may send them.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)

	// Serving: tell the previous generation to drain and exit.
	if err := upg.Ready(); err != nil {
		return err
	}
wait:
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				go upgradeLogged(log, upgrade)
				continue
			}
			upg.Stop() // stopping for good; ends an upgrade in flight
			break wait
		case <-upg.Exit(): // the next generation is ready
			break wait
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		}
	}

	// Answer every request already sent to this generation, then exit.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Drain(ctx); err != nil {
		return err
	}
	log.Info("drained", zap.Duration("duration", time.Since(start)))
	return nil
}

// upgradeLogged starts the next generation; on failure this one keeps
// serving.
func upgradeLogged(log *zap.Logger, upgrade func(context.Context) (int, error)) {
	if _, err := upgrade(context.Background()); err != nil {
		log.Error("upgrade failed, still serving", zap.Error(err))
	}
}

func listen(upg *tableflip.Upgrader, addr, socket string) (net.Listener, error) {
	if socket != "" {
		return tableflip.Listen(context.Background(), upg, "unix://"+socket)
	}
	return tcp.Listen(context.Background(), upg, "tcp", addr)
}
