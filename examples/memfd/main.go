// Command memfd is an HTTP counter service whose counters live in a memfd
// table (package memtable, a transport written by a plugin author on
// tableflip's public API). On SIGHUP the next generation takes over the
// listening socket and the very same memory: nothing is copied, and the
// counters survive. SIGTERM stops it.
//
//	go build -o memfd-server ./examples/memfd
//	./memfd-server -addr 127.0.0.1:8081 -pidfile memfd.pid &
//	curl -X POST '127.0.0.1:8081/add?key=apples&delta=3'   # apples=3
//	kill -HUP $(cat memfd.pid)
//	curl '127.0.0.1:8081/get?key=apples'                   # apples=3, from the next generation
//	curl 127.0.0.1:8081/checksum                           # entries=1 sha256=...
//	kill -TERM $(cat memfd.pid)
//
// GET / answers "pid=<pid> generation=<n> inode=<memfd inode>", like
// examples/http.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tableflip-go/tableflip/examples/memfd/memtable"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is main with its arguments and exit code, so that tests run the
// program itself.
func run(args []string) int {
	fs := flag.NewFlagSet("memfd", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8081", "serve HTTP on this TCP `host:port`")
	pidFile := fs.String("pidfile", "", "keep the serving process's pid in this `file`")
	slots := fs.Int("slots", memtable.DefaultSlots, "`number` of counters the table has room for (when it is created)")
	logFormat := fs.String("log", "console", "log to stderr as `console`, json, or off")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := newLogger(*logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memfd:", err)
		return 2
	}
	defer log.Sync()
	if err := serve(log, *addr, *pidFile, *slots); err != nil {
		log.Error("exit", zap.Error(err))
		return 1
	}
	return 0
}

func serve(log *zap.Logger, addr, pidFile string, slots int) error {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log})
	if err != nil {
		return err
	}
	defer upg.Stop()

	// The table by name, through the registry: package memtable
	// registered the "memfd" scheme when it was imported.
	ctx := context.Background()
	c, err := tableflip.Open(ctx, upg, "memfd://counters?slots="+strconv.Itoa(slots))
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	table := c.(*memtable.Table)
	defer table.Close()
	n, _ := table.Len()
	info := table.Info()
	log.Info("table", zap.Uint64("inode", info.Inode), zap.Bool("inherited", info.Inherited), zap.Int("entries", n))

	ln, err := tcp.Listen(ctx, upg, "tcp", addr)
	if err != nil {
		upg.Fail(err)
		return err
	}
	pid, gen := os.Getpid(), upg.Generation()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d generation=%d inode=%d\n", pid, gen, info.Inode)
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		v, ok, err := table.Get(key)
		switch {
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		case !ok:
			http.Error(w, key+" not found", http.StatusNotFound)
		default:
			fmt.Fprintf(w, "%s=%d\n", key, v)
		}
	})
	mux.HandleFunc("POST /add", func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		delta, err := strconv.ParseUint(r.URL.Query().Get("delta"), 10, 64)
		if err != nil {
			http.Error(w, "delta: "+err.Error(), http.StatusBadRequest)
			return
		}
		v, err := table.Add(key, delta)
		switch {
		case errors.Is(err, memtable.ErrNotOwner):
			// Handing the table over: the next generation takes the
			// write once it is ready.
			w.Header().Set("Retry-After", "1")
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			fmt.Fprintf(w, "%s=%d\n", key, v)
		}
	})
	mux.HandleFunc("GET /checksum", func(w http.ResponseWriter, r *http.Request) {
		m, err := table.Snapshot()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "entries=%d sha256=%x\n", len(m), Checksum(m))
	})
	srv := drain.New(&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, drain.Options{Logger: log})

	// drain.Run handles SIGHUP (upgrade) and SIGTERM (stop), calls Ready
	// (from then on the table is ours to write, and the previous
	// generation drains and exits), serves only once Ready has succeeded,
	// and drains when the next generation is ready or SIGTERM came.
	return drain.Run(upg, func() error { return srv.Serve(ln) }, srv.Drain, drain.RunOptions{Logger: log})
}

// Checksum is the SHA-256 of the entries as "key=value\n" lines, sorted.
func Checksum(m map[string]uint64) [32]byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%d\n", k, m[k])
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
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
