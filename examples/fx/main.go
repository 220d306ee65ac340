// Command fx is a small fx microservice that upgrades itself without
// failing a request or doing a job twice: an HTTP API and a background
// worker, wired with go.uber.org/fx and fxmodule.
//
//	go build -o fxsvc ./examples/fx
//	./fxsvc -addr 127.0.0.1:8080 -pidfile fxsvc.pid -record items &
//	curl 127.0.0.1:8080             # pid=4242 generation=1 next_item=17
//	kill -HUP $(cat fxsvc.pid) # upgrade to the binary on disk now
//	curl 127.0.0.1:8080             # pid=4250 generation=2 next_item=25
//	kill -TERM $(cat fxsvc.pid)
//
// The worker takes numbered items, one after the other, and spends -item
// on each. At an upgrade the old generation stops taking items, finishes
// the one in flight, and hands the number of the next one to the new
// generation in the upgrade's state (tableflip.Options.SaveState, read
// back with Upgrader.LoadState); the new generation starts working once it
// is ready. If the upgrade fails, the old generation takes up the work
// again. SIGTERM stops taking items and finishes the one in flight. With
// -record, every generation appends to that file one line per event:
//
//	START pid=P gen=G next=N         this generation starts at item N
//	DONE item=N pid=P gen=G          item N is finished
//	HANDOFF next=N inflight=K pid=P  handed over at an upgrade (K: the item it finished first, -1 if none)
//	STOP next=N inflight=K pid=P     stopped for good
//
// Its flags and its answer follow the contract of examples/http: -addr,
// -socket, -pidfile, "pid=<pid>" in the body of GET /, SIGHUP upgrades,
// SIGTERM stops gracefully and exits 0.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tableflip-go/tableflip/fxmodule"
	"github.com/tableflip-go/tableflip/tableflip"
	_ "github.com/tableflip-go/tableflip/transport/tcp"  // registers "tcp://"
	_ "github.com/tableflip-go/tableflip/transport/unix" // registers "unix://"
)

// flags are the command line.
type flags struct {
	addr     string
	socket   string
	pidFile  string
	record   string
	itemTime time.Duration
}

func main() {
	var f flags
	flag.StringVar(&f.addr, "addr", "127.0.0.1:8080", "serve HTTP on this TCP `host:port`")
	flag.StringVar(&f.socket, "socket", "", "serve HTTP on the unix socket at this `path` instead of -addr")
	flag.StringVar(&f.pidFile, "pidfile", "", "keep the serving process's pid in this `file`")
	logFormat := flag.String("log", "console", "log to stderr as `console`, json, or off")
	flag.StringVar(&f.record, "record", "", "append one line per worker event to this `file`")
	flag.DurationVar(&f.itemTime, "item", 20*time.Millisecond, "time the worker spends on one item")
	flag.Parse()
	log, err := newLogger(*logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fx:", err)
		os.Exit(2)
	}
	// fx's Run exits 1 when the app fails to start or to stop cleanly,
	// and returns after a clean stop: SIGTERM, or an upgrade that
	// succeeded.
	newApp(f, log).Run()
	log.Sync()
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

// newApp is the whole service.
func newApp(f flags, log *zap.Logger) *fx.App {
	return fx.New(
		fx.Supply(f, log),
		fx.WithLogger(func(log *zap.Logger) fxevent.Logger {
			l := &fxevent.ZapLogger{Logger: log}
			l.UseLogLevel(zapcore.DebugLevel) // fx's errors still log as errors
			// A new generation that fails to start tells its parent why.
			return fxmodule.EventLogger(l)
		}),
		fxmodule.Module,
		fx.Provide(newConfig, newWorker),
		fxmodule.Listener("http", listenURI(f)),
		fxmodule.ServeHTTP("http", newServer),
		fx.Provide(fxmodule.AsDrainer(func(w *Worker) *Worker { return w })),
		fx.Invoke(startWorker),
	)
}

// listenURI is where the HTTP API listens, as a tableflip address.
func listenURI(f flags) string {
	if f.socket != "" {
		return "unix://" + f.socket
	}
	return "tcp://" + f.addr
}

// newConfig configures the Upgrader: the PID file, and the worker's state
// as what the old generation hands to the new one.
func newConfig(f flags, w *Worker) fxmodule.Config {
	return fxmodule.Config{Options: tableflip.Options{
		PIDFile:   f.pidFile,
		SaveState: w.SaveState,
	}}
}

func newServer(upg *tableflip.Upgrader, w *Worker) *http.Server {
	pid, gen := os.Getpid(), upg.Generation()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "pid=%d generation=%d next_item=%d\n", pid, gen, w.Next())
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}
