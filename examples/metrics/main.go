// Command metrics is examples/http with its lifecycle on /metrics: an HTTP
// server that upgrades itself on SIGHUP without failing a request, and
// exports, through package tableflipprom, its generation, its upgrades by
// result and reason, how long upgrades and drains took, and the files it
// inherited and passes on. SIGTERM stops it.
//
//	cd examples/metrics && go build -o metrics-example .
//	./metrics-example -addr 127.0.0.1:8080 -pidfile metrics.pid &
//	curl 127.0.0.1:8080/          # pid=4242 generation=1
//	kill -HUP $(cat metrics.pid)
//	curl -s 127.0.0.1:8080/metrics | grep ^tableflip_
//
// Flags: -addr, -pidfile, -drain (the drain deadline), -log. GET / answers
// "pid=<pid> generation=<n>", as examples/http does.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tableflip-go/tableflip/examples/metrics/tableflipprom"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is the program, given its arguments; it returns the exit status.
func run(args []string) int {
	fs := flag.NewFlagSet("metrics", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "serve HTTP on this TCP `host:port`")
	pidFile := fs.String("pidfile", "", "keep the serving process's pid in this `file`")
	drainDeadline := fs.Duration("drain", 30*time.Second, "how long an old generation may drain")
	logFormat := fs.String("log", "console", "log to stderr as `console`, json, or off")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *drainDeadline <= 0 {
		fmt.Fprintln(os.Stderr, "metrics: -drain must be positive")
		return 2
	}
	log, err := newLogger(*logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer log.Sync()
	if err := serve(log, *addr, *pidFile, *drainDeadline); err != nil {
		return 1 // logged by serve
	}
	return 0
}

func serve(log *zap.Logger, addr, pidFile string, drainDeadline time.Duration) (err error) {
	// Log why serve ended with the latest logger, the generation's.
	defer func() {
		if err != nil {
			log.Error("exit", zap.Int("pid", os.Getpid()), zap.Error(err))
		}
	}()
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log})
	if err != nil {
		return err
	}
	defer upg.Stop()
	log = upg.Logger() // with this generation's number
	pid, gen := os.Getpid(), upg.Generation()

	// First the metrics, so that their hooks run before any other.
	metrics, err := tableflipprom.New(upg)
	if err != nil {
		upg.Fail(err)
		return err
	}
	defer metrics.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)

	// The listener is inherited from the previous generation, or created;
	// through metrics.Fds, so that it is counted.
	ln, err := tcp.Listen(context.Background(), metrics.Fds(), "tcp", addr)
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d generation=%d\n", pid, gen)
	})
	srv := drain.New(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, drain.Options{})

	// Handle signals before Ready: from then on, anyone may send them.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(signals)

	if err := upg.Ready(); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
wait:
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				go upgrade(log, upg)
				continue
			}
			upg.Stop()
			break wait
		case <-upg.Exit():
			break wait
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		}
	}

	// Drain, and hand its duration to the next generation's /metrics.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), drainDeadline)
	defer cancel()
	err = srv.Drain(ctx)
	d := time.Since(start)
	metrics.ObserveDrain(d)
	if err != nil {
		log.Error("drain failed", zap.Int("pid", pid), zap.Duration("duration", d), zap.Error(err))
		return err
	}
	log.Info("drained", zap.Int("pid", pid), zap.Duration("duration", d))
	return nil
}

// upgrade starts the next generation; on failure this one keeps serving.
func upgrade(log *zap.Logger, upg *tableflip.Upgrader) {
	start := time.Now()
	if _, err := upg.Upgrade(context.Background()); err != nil {
		log.Error("upgrade failed, still serving", zap.Int("pid", os.Getpid()),
			zap.Duration("duration", time.Since(start)), zap.String("reason", tableflipprom.Reason(err)), zap.Error(err))
	}
}

// newLogger returns the logger that -log asks for.
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
		return nil, fmt.Errorf("metrics: -log must be console, json or off")
	}
	return cfg.Build()
}
