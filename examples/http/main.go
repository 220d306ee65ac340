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
// the body of GET /.
//
// A generation that has handed over takes the service back if its
// successor dies while it still drains, or within -linger after its drain:
// it serves again on the sockets it still holds, and names itself in the
// PID file again.
//
// -upgrade-timeout bounds how long an upgrade waits for the next
// generation to become ready before it gives up and serves on (0, the
// default, is tableflip's: one minute).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/control"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	"github.com/tableflip-go/tableflip/transport/tcp"
	_ "github.com/tableflip-go/tableflip/transport/unix" // registers "unix://"
)

// upgradeTimeout is -upgrade-timeout: Options.UpgradeTimeout.
var upgradeTimeout = flag.Duration("upgrade-timeout", 0, "give up on a next generation not ready within this `duration` (0: tableflip's default, 1m)")

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "serve HTTP on this TCP `host:port`")
	socket := flag.String("socket", "", "serve HTTP on the unix socket at this `path` instead of -addr")
	pidFile := flag.String("pidfile", "", "keep the serving process's pid in this `file`")
	controlPath := flag.String("control", "", "answer tableflipctl's upgrade and stop requests on a unix socket at this `path`")
	logFormat := flag.String("log", "console", "log to stderr as `console`, json, or off")
	linger := flag.Duration("linger", 0, "after handing over and draining, stay this `long` to take the service back should the successor die")
	flag.Parse()
	log, err := newLogger(*logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(2)
	}
	if err := run(log, *addr, *socket, *pidFile, *controlPath, *linger); err != nil {
		log.Error("exit", zap.Error(err))
		log.Sync()
		os.Exit(1)
	}
	log.Sync()
}

func run(log *zap.Logger, addr, socket, pidFile, controlPath string, linger time.Duration) error {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log, UpgradeTimeout: *upgradeTimeout})
	if err != nil {
		return err
	}
	defer upg.Stop()

	pid, gen := os.Getpid(), upg.Generation()
	// newServer listens, and returns the serve and drain of a new server.
	// The listener is inherited from the previous generation, or created;
	// after a take-back, it is the socket this generation still holds.
	newServer := func() (func() error, func(context.Context) error, error) {
		ln, err := listen(upg, addr, socket)
		if err != nil {
			return nil, nil, err
		}
		srv := drain.New(&http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "pid=%d generation=%d\n", pid, gen)
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}, drain.Options{Logger: log})
		return func() error { return srv.Serve(ln) }, srv.Drain, nil
	}
	serve, drainServer, err := newServer()
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	var lifecycle drain.Upgrader = upg
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
		lifecycle = controlled{upg, ctl}
	}
	// drain.Run handles SIGHUP (upgrade) and SIGTERM (stop), calls Ready,
	// serves only once Ready has succeeded, and drains when the next
	// generation is ready or SIGTERM came: every request already sent to
	// this generation is answered before it exits. With Resume, it takes
	// the service back should the successor die meanwhile.
	return drain.Run(lifecycle, serve, drainServer, drain.RunOptions{Logger: log, Resume: newServer, Linger: linger})
}

// controlled is the Upgrader whose upgrades go through the control server,
// so that SIGHUP and tableflipctl requests share one upgrade and its result.
type controlled struct {
	*tableflip.Upgrader
	ctl *control.Server
}

func (c controlled) Upgrade(ctx context.Context) (int, error) {
	pid, _, err := c.ctl.Upgrade(ctx)
	return pid, err
}

func listen(upg *tableflip.Upgrader, addr, socket string) (net.Listener, error) {
	if socket != "" {
		return tableflip.Listen(context.Background(), upg, "unix://"+socket)
	}
	return tcp.Listen(context.Background(), upg, "tcp", addr)
}

// newLogger returns zap's production logger in the encoding -log asks
// for, without stack traces (errors tell their own story), or one that
// logs nothing.
func newLogger(format string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.DisableStacktrace = true
	switch format {
	case "json":
	case "console":
		cfg.Encoding = "console"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "off":
		return zap.NewNop(), nil
	default:
		return nil, errors.New("-log must be console, json or off")
	}
	return cfg.Build()
}
