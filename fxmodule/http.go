package fxmodule

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip/drain"
)

// ServeHTTP serves the *http.Server that newServer constructs on the
// listener named listener (see Listener), and drains it without losing a
// request when this generation stops (see package tableflip/drain):
//
//	fxmodule.Listener("http", "tcp://:8080"),
//	fxmodule.ServeHTTP("http", func(h http.Handler) *http.Server {
//		return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
//	}),
//
// newServer is a constructor as for fx.Provide: it may take parameters
// from the graph and return an error as well. Its *http.Server is kept to
// ServeHTTP (it is provided under a name of its own), so an app may serve
// several. The server's Addr is ignored.
//
// The server starts serving only once the Upgrader's Ready has returned
// nil, after the app's last OnStart hook: a generation accepts nothing
// before the previous one has committed to it (until then the listening
// socket's backlog holds the connections, and a generation that fails to
// start leaves them to its parent). Module drains it together with every
// other Drainer when the app stops. If serving fails, the app shuts down
// with exit code 1.
func ServeHTTP(listener string, newServer any) fx.Option {
	serverTag := nameTag("tableflip.http:" + listener)
	return fx.Options(
		fx.Provide(fx.Annotate(newServer, fx.ResultTags(serverTag))),
		fx.Provide(fx.Annotate(
			func(srv *http.Server, ln net.Listener, lc fx.Lifecycle, sd fx.Shutdowner, g *generation) Drainer {
				h := newHTTPServer(srv, ln, listener, sd, g.log)
				g.addServer(h) // serves once Ready has returned nil
				lc.Append(fx.Hook{OnStop: h.stop})
				return h
			},
			fx.ParamTags(serverTag, nameTag(listener)),
			fx.ResultTags(`group:"`+DrainerGroup+`"`),
		)),
	)
}

// httpServer is one ServeHTTP server: a drain.Server and its listener.
type httpServer struct {
	ds       *drain.Server
	ln       net.Listener
	name     string
	sd       fx.Shutdowner
	log      *zap.Logger
	served   chan struct{}
	draining atomic.Bool
	started  atomic.Bool
}

func newHTTPServer(srv *http.Server, ln net.Listener, name string, sd fx.Shutdowner, log *zap.Logger) *httpServer {
	log = log.With(zap.String("listener", name), zap.Stringer("addr", ln.Addr()))
	return &httpServer{
		ds:     drain.New(srv, drain.Options{Logger: log}),
		ln:     ln,
		name:   name,
		sd:     sd,
		log:    log,
		served: make(chan struct{}),
	}
}

// serve starts serving; the generation calls it once Ready returned nil.
func (h *httpServer) serve() {
	h.started.Store(true)
	go func() {
		defer close(h.served)
		if err := h.ds.Serve(h.ln); err != nil {
			h.log.Error("http server failed, shutting the app down", zap.Error(err))
			h.sd.Shutdown(fx.ExitCode(1))
		}
	}()
}

// Drain drains the server; Module calls it when the app stops.
func (h *httpServer) Drain(ctx context.Context) error {
	h.draining.Store(true)
	if err := h.ds.Drain(ctx); err != nil {
		return fmt.Errorf("http server on %q: %w", h.name, err)
	}
	return nil
}

// stop drains the server if Module did not (the app failed to
// start), and waits for Serve to return.
func (h *httpServer) stop(ctx context.Context) error {
	if !h.started.Load() {
		return nil // never served: the generation did not become ready
	}
	var err error
	if !h.draining.Load() {
		err = h.Drain(ctx)
	}
	select {
	case <-h.served:
	case <-ctx.Done():
		return fmt.Errorf("fxmodule: http server on %q still serving: %w", h.name, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("fxmodule: %w", err)
	}
	return nil
}
