// Command counter is a counter service that upgrades itself without losing
// an increment: POST /inc adds one and answers the new value, GET / reads
// it. SIGHUP starts the next generation, which takes the listening socket
// and the counter; SIGTERM stops.
//
//	go build -o counter ./examples/counter
//	./counter -addr 127.0.0.1:8080 -pidfile counter.pid &
//	curl -X POST 127.0.0.1:8080/inc   # value=1 pid=4242
//	kill -HUP $(cat counter.pid)
//	curl 127.0.0.1:8080               # value=1 pid=4250
//
// The counter lives in memory. An increment is acknowledged only once the
// next generation, if an upgrade is under way, has been sent it (package
// statestream): every increment a client saw acknowledged survives every
// upgrade. docs/state.md explains the pattern.
//
// The program is whole: copy it and change the state.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/examples/counter/statestream"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "serve HTTP on this TCP `host:port`")
	pidFile := flag.String("pidfile", "", "keep the serving process's pid in this `file`")
	flag.Parse()
	cfg := zap.NewProductionConfig()
	cfg.DisableStacktrace = true
	log, err := cfg.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := run(log, *addr, *pidFile); err != nil {
		log.Error("exit", zap.Error(err))
		log.Sync()
		os.Exit(1)
	}
	log.Sync()
}

// counter is the state. Its value changes only under the stream's lock
// (Update, Restore, Apply); reads may come at any time.
type counter struct{ n atomic.Int64 }

func run(log *zap.Logger, addr, pidFile string) error {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log})
	if err != nil {
		return err
	}
	defer upg.Stop()

	var c counter
	// The state: a snapshot is the value, a change record is empty (one
	// increment).
	state, err := statestream.Open(upg, "counter", statestream.Config{
		Snapshot: func() []byte { return strconv.AppendInt(nil, c.n.Load(), 10) },
		Restore: func(b []byte) error {
			v, err := strconv.ParseInt(string(b), 10, 64)
			c.n.Store(v)
			return err
		},
		Apply: func([]byte) error { c.n.Add(1); return nil },
	})
	if err != nil {
		upg.Fail(err)
		return err
	}
	defer state.Close()

	ln, err := tcp.Listen(context.Background(), upg, "tcp", addr)
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	pid := os.Getpid()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /inc", func(w http.ResponseWriter, r *http.Request) {
		if !caughtUp(w, r, state) {
			return
		}
		var v int64
		err := state.Update(func() []byte { v = c.n.Add(1); return nil })
		if errors.Is(err, statestream.ErrClosed) {
			// Not counted: the client may retry on the next generation.
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "value=%d pid=%d\n", v, pid)
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		if caughtUp(w, r, state) {
			fmt.Fprintf(w, "value=%d pid=%d\n", c.n.Load(), pid)
		}
	})
	// What a soak test reads to see that each generation is as lean as
	// the first (go run ./internal/soak).
	mux.HandleFunc("GET /debug/runtime", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "goroutines=%d pid=%d\n", runtime.NumGoroutine(), pid)
	})
	srv := drain.New(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, drain.Options{})

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)

	// Accept nothing before the commit: if Ready fails, the connections
	// queued on the listening socket are still the previous generation's
	// to answer.
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
				go func() {
					if _, err := upg.Upgrade(context.Background()); err != nil {
						log.Error("upgrade failed, still serving", zap.Error(err))
					}
				}()
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

	// Answer every request this generation accepted, sending each
	// increment to the successor; then the successor may take writes.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	derr := srv.Drain(ctx)
	if err := state.Close(); err != nil {
		return err
	}
	log.Info("drained", zap.Int64("value", c.n.Load()))
	return derr
}

// caughtUp waits until every increment of the previous generation has been
// applied. A previous generation that never finishes its drain (past its
// own 30 s deadline) gets the request answered 503, not a wrong value.
func caughtUp(w http.ResponseWriter, r *http.Request, state *statestream.Stream) bool {
	t := time.NewTimer(35 * time.Second)
	defer t.Stop()
	select {
	case <-state.CaughtUp():
		if err := state.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return false
		}
		return true
	case <-r.Context().Done():
		return false
	case <-t.C:
		http.Error(w, "counter: previous generation still draining", http.StatusServiceUnavailable)
		return false
	}
}
