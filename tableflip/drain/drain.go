package drain

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// DefaultIdleGrace is the grace a connection gets when Options.IdleGrace is
// zero.
//
// The grace has to cover the time a client takes to send its next request on
// a connection it already holds. For a busy keep-alive client that is well
// under a millisecond. The slow case is a connection accepted just before the
// drain began: its client still has to finish a TLS 1.2 handshake and send
// the request, about 2.5 round trips, which is 1.25 s on a 500 ms path. Two
// seconds covers that with room to spare. A longer grace costs little, because
// the new generation is already serving and the old one only stays alive a
// little longer. A shorter grace closes connections that a client was about to
// use. For comparison, net/http's own Shutdown treats a new connection as idle
// after 5 s.
const DefaultIdleGrace = 2 * time.Second

// recheckInterval is the shortest time between two looks at the connections
// during a drain.
const recheckInterval = time.Millisecond

// Options configures a Server. The zero value is ready to use.
type Options struct {
	// IdleGrace is how long a connection that is idle (between keep-alive
	// requests) or new (accepted, with no request yet) may wait for its
	// client's next request once the drain has begun. The time counts from
	// the later of the start of the drain and the moment the connection
	// became idle. That request is answered with "Connection: close". A
	// connection still silent after the grace is closed. One that has sent
	// part of a request (or of a TLS handshake) is not silent: it gets
	// the drain's own deadline, like a request in a handler. Zero means
	// DefaultIdleGrace. A negative value means no grace at all, which
	// loses requests in the same way as a plain http.Server.Shutdown.
	IdleGrace time.Duration

	// Logger receives one record per drain step, with messages prefixed
	// "drain:". Nil means no logging.
	Logger *zap.Logger
}

// IncompleteError is what Drain returns when its context ends before every
// connection has closed. When that happens, Drain closes the remaining
// connections with http.Server.Close.
type IncompleteError struct {
	// Open is the number of connections still open when the context ended.
	Open int
	// Err is the context's error (context.DeadlineExceeded or
	// context.Canceled).
	Err error
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("drain: %d connection(s) still open when the drain was cut short: %v", e.Open, e.Err)
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// Server drains an *http.Server without losing a request. See the package
// documentation.
type Server struct {
	srv       *http.Server
	handler   http.Handler                                    // the user's Handler (nil: DefaultServeMux)
	connState func(net.Conn, http.ConnState)                  // the user's ConnState, chained
	connCtx   func(context.Context, net.Conn) context.Context // the user's ConnContext, chained
	grace     time.Duration
	log       *zap.Logger
	epoch     time.Time // connection times are monotonic offsets from here

	// tell makes every response carry "Connection: close". It is set once
	// the listeners are closed.
	tell atomic.Bool
	// started is set when Drain is first called. It tells the ConnState
	// hook to wake the drain on each change.
	started  atomic.Bool
	draining chan struct{} // closed when the drain has begun
	kick     chan struct{} // capacity 1: something changed, look again

	// conns holds the connections that net/http serves, keyed by the
	// net.Conn that net/http's ConnState hook reports for StateNew. The map
	// is written on StateNew, StateHijacked and StateClosed. The Active and
	// Idle transitions, which happen on every request, only update atomics
	// in the entry, so the per-request path takes no lock.
	conns  sync.Map // net.Conn -> *connInfo
	nconns atomic.Int64

	// Counts of the connections that the drain closed, or left to
	// Shutdown to close, because they stayed silent past their grace, and
	// of those it waited for because they had sent part of a request. Only
	// the drain loop touches them.
	closedNew, closedIdle, partial int

	mu        sync.Mutex
	listeners map[*listener]struct{} // listeners inside srv.Serve
	serving   int                    // Serve calls inside srv.Serve
	start     time.Duration          // when the drain began (offset from epoch)
	done      chan struct{}          // closed when the first Drain returns
	err       error                  // its result; read only after done is closed
}

// connInfo is the drain's view of one connection.
type connInfo struct {
	// state packs the http.ConnState (low 3 bits), the early flag (bit
	// 3) and the time, as an offset from Server.epoch, at which the
	// connection entered the state. They are packed into one word so that
	// a reader never sees a state paired with a time or flag from a
	// different transition. The early flag marks an idle connection whose
	// next request had begun to arrive before net/http reported it idle
	// (see trackConn).
	state atomic.Int64
	// bodyless is set while the connection serves a request without a
	// body (see trackConn).
	bodyless atomic.Bool
	// h2 is set once the connection is known to speak HTTP/2: from ALPN
	// for TLS, or from its first request for unencrypted HTTP/2. Such a
	// connection is never waited for: http.Server.Shutdown sends it a
	// GOAWAY, and the client retries on a new connection any stream that
	// the server did not take.
	h2 atomic.Bool
	// rc counts what the client sends on a connection that the drain
	// wrapped (see Serve). Nil: the drain cannot see it.
	rc *readConn
	// closed is set once the drain has closed the connection because it
	// sent no request within its grace, and partial once the drain has
	// seen it in the middle of a request. Only the drain loop touches
	// them.
	closed, partial bool
}

// receiving reports whether the client has sent bytes since the connection
// entered its state (new or idle, at since), or had sent them early: it is
// sending a request that net/http has not read in full yet.
func (ci *connInfo) receiving(since time.Duration, early bool) bool {
	return ci.rc != nil && (early || ci.rc.lastRead.Load() > int64(since))
}

const (
	stateBits = 0x7
	earlyBit  = 0x8
)

func pack(st http.ConnState, at time.Duration, early bool) int64 {
	v := int64(at)<<4 | int64(st)
	if early {
		v |= earlyBit
	}
	return v
}

func unpack(v int64) (st http.ConnState, since time.Duration, early bool) {
	return http.ConnState(v & stateBits), time.Duration(v >> 4), v&earlyBit != 0
}

// New returns a Server that serves and drains srv.
//
// New wraps srv.Handler, srv.ConnState and srv.ConnContext. The user's
// ConnState is still called for every change, before the drain's own
// bookkeeping, and the user's ConnContext is still called for every
// connection. Set these fields before calling New, and do not change them
// afterwards. srv must not be
// served other than through the returned Server's Serve method, because Drain
// can only close the listeners it knows about.
func New(srv *http.Server, opts Options) *Server {
	if srv == nil {
		panic("drain: New called with a nil *http.Server")
	}
	grace := opts.IdleGrace
	switch {
	case grace == 0:
		grace = DefaultIdleGrace
	case grace < 0:
		grace = 0
	}
	s := &Server{
		srv:       srv,
		handler:   srv.Handler,
		connState: srv.ConnState,
		connCtx:   srv.ConnContext,
		grace:     grace,
		log:       logger(opts.Logger),
		epoch:     time.Now(),
		draining:  make(chan struct{}),
		kick:      make(chan struct{}, 1),
		listeners: make(map[*listener]struct{}),
		done:      make(chan struct{}),
	}
	srv.Handler = http.HandlerFunc(s.serveHTTP)
	srv.ConnState = s.trackConn
	srv.ConnContext = s.connContext
	return s
}

// Serve serves HTTP on ln through the wrapped http.Server until Drain closes
// ln. It may be called several times, even concurrently, with different
// listeners. Serve always closes ln before it returns, as http.Server.Serve
// does. For HTTPS, use ServeTLS; Serve(tls.NewListener(ln, cfg)) works too,
// but then the drain cannot tell a client that has sent part of a request
// from a silent one, and closes both at the end of their grace.
//
// Serve wraps each plain connection that ln accepts, to see when its
// client sends. Handlers that hijack a connection get the wrapper, whose
// NetConn method returns the connection ln accepted.
//
// Serve returns nil once the drain has closed ln. At that point the drain
// itself is still going on: wait for Drain to return before the process
// exits. If Drain has already been called, Serve closes ln and returns nil
// right away, because this generation is on its way out. Any other error
// comes from http.Server.Serve. For example, if the http.Server is shut down
// or closed directly, Serve returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	l := &listener{Listener: ln, s: s}
	return s.serve(l, l)
}

// ServeTLS serves HTTPS on ln, a listener of plain connections, with cfg,
// as Serve(tls.NewListener(ln, cfg)) would. The difference is that the
// drain sees the bytes under TLS, so that a client that has sent part of
// a request when the drain begins is waited for, not closed at the end of
// its grace. To offer HTTP/2 as well, put "h2" in cfg.NextProtos and
// either leave srv.TLSConfig nil or set it to cfg.
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config) error {
	l := &listener{Listener: ln, s: s}
	return s.serve(l, tls.NewListener(l, cfg))
}

// serve serves on outer, which is l, or a listener over l.
func (s *Server) serve(l *listener, outer net.Listener) error {
	s.mu.Lock()
	if s.started.Load() {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.serving++
	s.mu.Unlock()

	err := s.srv.Serve(outer)

	s.mu.Lock()
	delete(s.listeners, l)
	s.serving--
	s.mu.Unlock()
	s.wake()
	if l.drained.Load() {
		return nil
	}
	return err
}

// Draining returns a channel that is closed once the drain has begun. From
// then on, Serve no longer accepts connections and every response carries
// "Connection: close". Handlers of long-lived responses (streams, long polls)
// and of hijacked connections (WebSockets), which the drain cannot end
// gracefully by itself, should watch it and finish. A Server that is never
// drained never closes the channel.
func (s *Server) Draining() <-chan struct{} { return s.draining }

// Drain stops this generation from serving without losing a request, and
// returns when every connection has closed. ctx bounds the whole drain.
//
// The steps are as follows:
//
//  1. Close the listeners given to Serve. The listening socket stays open in
//     the next generation, which keeps accepting on it.
//  2. Answer every request from now on with "Connection: close", so that its
//     client opens a new connection, which the next generation accepts. A
//     request that was already in a handler gets the header too, if its
//     handler returns without having written anything.
//  3. Give each idle or new connection IdleGrace, counted from the later of
//     the start of the drain and the moment it became idle, to send the
//     request that will get that answer. A new connection still silent
//     after its grace is closed here. A connection whose client has sent
//     part of a request is not silent: it is waited for like an active
//     one.
//  4. Once no connection can lose a request to it, call
//     http.Server.Shutdown. That is once every Serve loop has returned, and
//     no HTTP/1 connection is in the middle of a request, or new or idle
//     within its grace. HTTP/2 connections are not waited for. Shutdown
//     closes the connections that stayed idle past their grace, sends GOAWAY
//     to HTTP/2 connections, and waits for the rest to close.
//  5. If ctx ends first, close every connection with http.Server.Close and
//     return an *IncompleteError that wraps ctx.Err().
//
// A simpler design would wait until every connection had closed and only
// then call Shutdown. That does not work for HTTP/2. An idle HTTP/2
// connection cannot be told to leave with "Connection: close", because no
// response is going out to carry the header. Closing it outright races with
// a request the client may be sending at that moment. The GOAWAY that only
// Shutdown sends is the protocol's loss-free way to end it, and the sooner
// it goes out, the sooner the client moves. For HTTP/1 the timing of
// Shutdown matters in the other direction: net/http drops a request that it
// reads after Shutdown has begun, so Shutdown must wait for the graces. An
// unencrypted HTTP/2 connection that has carried no request yet cannot be
// told from HTTP/1. It gets the grace too, and Shutdown's GOAWAY after it.
//
// Drain is safe to call from several goroutines, and while Serve is starting.
// The first call drains. Later calls wait for it and return its result, or
// return early with an error wrapping their own ctx.Err() if that ends first.
// The first call's ctx is the one that bounds the drain.
//
// When Drain returns nil, every connection has closed, and every call to the
// user's ConnState hook with StateClosed has returned. Hijacked connections
// are not counted: they belong to their handlers.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	if s.started.Load() {
		s.mu.Unlock()
		select {
		case <-s.done:
			return s.err
		case <-ctx.Done():
			return fmt.Errorf("drain: waiting for the drain in progress: %w", ctx.Err())
		}
	}
	s.started.Store(true)
	s.start = time.Since(s.epoch)
	lns := make([]*listener, 0, len(s.listeners))
	for l := range s.listeners {
		l.drained.Store(true)
		lns = append(lns, l)
	}
	s.mu.Unlock()

	// Close the listeners before telling clients to reconnect, so that a
	// told client's new connection goes to the next generation, not back
	// to this one.
	for _, l := range lns {
		l.Close()
	}
	s.tell.Store(true)
	close(s.draining)
	s.log.Info("drain: started", zap.Int("listeners", len(lns)), zap.Int("conns", s.countConns()), zap.Duration("idle_grace", s.grace))

	s.err = s.drain(ctx)
	close(s.done)
	return s.err
}

func (s *Server) drain(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := time.Since(s.epoch)
		wait, next, expired := s.pending(now)
		for _, c := range expired {
			s.log.Debug("drain: closing a connection that sent no request within its grace", zap.Stringer("remote", c.RemoteAddr()))
			c.Close()
		}
		if !wait {
			break
		}
		if next > 0 {
			timer.Reset(next - now)
		}
		select {
		case <-s.kick:
		case <-timer.C:
		case <-ctx.Done():
			return s.abort(ctx)
		}
		timer.Stop()
		// Look again at most once per recheckInterval. Each look costs
		// O(connections), and a busy server reports changes in bursts.
		if d := now + recheckInterval - time.Since(s.epoch); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return s.abort(ctx)
			}
		}
	}

	// The idle HTTP/1 connections left are past their grace, and none of
	// them is receiving a request: Shutdown closes them.
	s.closedIdle = s.count(func(ci *connInfo, st http.ConnState, _ time.Duration) bool {
		return !ci.h2.Load() && st == http.StateIdle
	})
	s.log.Info("drain: shutting down", zap.Int("conns", s.countConns()),
		zap.Int("closing_idle_past_grace", s.closedIdle))
	if err := s.srv.Shutdown(ctx); err != nil {
		if ctx.Err() != nil {
			return s.abort(ctx)
		}
		return fmt.Errorf("drain: shutting down the http.Server: %w", err)
	}
	// Shutdown returns as soon as it has closed the last idle connection.
	// The goroutine serving that connection reports StateClosed a moment
	// later. Wait for that report, so that when Drain returns, nothing of
	// this server is left running.
	for s.countConns() > 0 {
		select {
		case <-s.kick:
		case <-ctx.Done():
			return s.abort(ctx)
		}
	}
	s.log.Info("drain: done", zap.Duration("duration", time.Since(s.epoch)-s.start),
		zap.Int("closed_new_silent_past_grace", s.closedNew),
		zap.Int("closed_idle_past_grace", s.closedIdle),
		zap.Int("waited_for_partial_requests", s.partial))
	return nil
}

// pending reports whether the drain must keep waiting before it may call
// Shutdown. It also returns the time at which the next grace ends (0 if
// none) and the new connections whose grace has just ended, for the caller
// to close.
func (s *Server) pending(now time.Duration) (wait bool, next time.Duration, expired []net.Conn) {
	s.mu.Lock()
	// A Serve loop still running may yet hand over a connection it has
	// just accepted.
	wait = s.serving > 0
	start := s.start
	s.mu.Unlock()

	s.conns.Range(func(k, v any) bool {
		ci := v.(*connInfo)
		if ci.h2.Load() {
			return true
		}
		st, since, early := unpack(ci.state.Load())
		switch st {
		case http.StateActive:
			// A request is in progress. Its connection either closes
			// after the response (the request came after the drain began,
			// so the response carries "Connection: close"), or goes idle
			// and gets a grace.
			wait = true
		case http.StateNew, http.StateIdle:
			if ci.receiving(since, early) {
				// A request (or a TLS handshake) is on its way
				// in. net/http reports the connection active only
				// once it has read the whole header, and Shutdown
				// would close it as idle: wait for it, as for an
				// active one, until the drain's deadline.
				if !ci.partial {
					ci.partial = true
					s.partial++
				}
				wait = true
				return true
			}
			end := max(since, start) + s.grace
			if now < end {
				wait = true
				if next == 0 || end < next {
					next = end
				}
				return true
			}
			// Shutdown would keep waiting on a new connection younger
			// than 5 s, and would drop the request if one came, so close
			// it here. An idle connection past its grace is left to
			// Shutdown, which closes it. Until then it may still bring a
			// request, which is served and answered with "Connection:
			// close".
			if st == http.StateNew && !ci.closed {
				ci.closed = true
				s.closedNew++
				expired = append(expired, k.(net.Conn))
			}
		}
		return true
	})
	return wait, next, expired
}

func (s *Server) abort(ctx context.Context) error {
	var active, partial, idle, h2 int
	s.conns.Range(func(_, v any) bool {
		ci := v.(*connInfo)
		st, since, early := unpack(ci.state.Load())
		switch {
		case ci.h2.Load():
			h2++
		case st == http.StateActive:
			active++
		case ci.receiving(since, early):
			partial++
		default:
			idle++
		}
		return true
	})
	err := &IncompleteError{Open: s.countConns(), Err: ctx.Err()}
	s.srv.Close()
	s.log.Warn("drain: cut short at the deadline, closed the remaining connections",
		zap.Int("open", err.Open),
		zap.Int("in_handler", active),
		zap.Int("receiving_request", partial),
		zap.Int("idle_or_new", idle),
		zap.Int("http2", h2),
		zap.Int("closed_new_silent_past_grace", s.closedNew),
		zap.Error(err.Err))
	return err
}

// count returns the number of connections for which f is true.
func (s *Server) count(f func(ci *connInfo, st http.ConnState, since time.Duration) bool) int {
	n := 0
	s.conns.Range(func(_, v any) bool {
		ci := v.(*connInfo)
		st, since, _ := unpack(ci.state.Load())
		if f(ci, st, since) {
			n++
		}
		return true
	})
	return n
}

func (s *Server) countConns() int { return int(s.nconns.Load()) }

func (s *Server) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// logger returns l, or a no-op logger if l is nil.
func logger(l *zap.Logger) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	return l
}

// serveHTTP wraps the user's handler.
//
// It sets the header on the ResponseWriter it was given, and does not wrap
// the ResponseWriter to catch the first write of a response whose handler was
// already running when the drain began. A wrapper would hide the optional
// interfaces that handlers type-assert for: http.Flusher, http.Hijacker,
// io.ReaderFrom (sendfile) and http.Pusher. Such a response goes out without
// the header, its connection goes idle, and the client's next request, sent
// within the grace, gets the header.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	told := s.tell.Load()
	if told {
		// HTTP/1: net/http closes the connection after this response.
		// HTTP/2: net/http strips the header and sends GOAWAY instead.
		w.Header().Set("Connection", "close")
	}
	if r.ProtoMajor == 2 {
		if r.TLS == nil {
			s.markHTTP2(r.Context())
		}
	} else if ci := s.connInfo(r.Context()); ci != nil {
		ci.bodyless.Store(r.Body == http.NoBody)
	}
	h := s.handler
	if h == nil {
		h = http.DefaultServeMux
	}
	h.ServeHTTP(w, r)
	if !told && s.tell.Load() {
		// The drain began while h ran. If h wrote nothing, net/http writes
		// the header after we return, and this still takes effect.
		// Otherwise the header has been sent or snapshotted already, and
		// this is a no-op.
		w.Header().Set("Connection", "close")
	}
}

// connKey is the context key under which connContext stores the connection.
type connKey struct{}

// connContext is the http.Server's ConnContext hook. It puts the connection
// in the context, where serveHTTP finds it to mark unencrypted HTTP/2
// connections.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	if s.connCtx != nil {
		ctx = s.connCtx(ctx, c)
	}
	return context.WithValue(ctx, connKey{}, c)
}

// markHTTP2 records that the connection of a request over unencrypted HTTP/2
// speaks HTTP/2. The ConnState hook cannot see it: the HTTP/2 server reports
// such a connection under the same net.Conn, and in the same sequence of
// states, as an HTTP/1 connection. An unencrypted HTTP/2 connection that
// never carried a request stays unknown. It gets the grace, and then
// Shutdown's GOAWAY, which is slower but loses nothing.
func (s *Server) markHTTP2(ctx context.Context) {
	if ci := s.connInfo(ctx); ci != nil && !ci.h2.Swap(true) && s.started.Load() {
		s.wake()
	}
}

// connInfo returns the drain's view of the connection of a request's
// context, or nil.
func (s *Server) connInfo(ctx context.Context) *connInfo {
	c, ok := ctx.Value(connKey{}).(net.Conn)
	if !ok {
		return nil
	}
	v, ok := s.conns.Load(c)
	if !ok {
		return nil
	}
	return v.(*connInfo)
}

type tlsStater interface{ ConnectionState() tls.ConnectionState }

// trackConn is the http.Server's ConnState hook. It calls the user's hook,
// then records the change. Because of that order, when Drain returns every
// StateClosed call to the user's hook has returned too.
func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	if s.connState != nil {
		s.connState(c, state)
	}
	now := time.Since(s.epoch)
	switch state {
	case http.StateNew:
		ci := &connInfo{rc: unwrap(c)}
		ci.state.Store(pack(state, now, false))
		s.conns.Store(c, ci)
		s.nconns.Add(1)
	case http.StateActive, http.StateIdle:
		v, ok := s.conns.Load(c)
		if !ok {
			break
		}
		ci := v.(*connInfo)
		prev, prevAt, _ := unpack(ci.state.Load())
		if prev == http.StateNew {
			// The first report after StateNew comes after the TLS
			// handshake: from net/http once it has read a request,
			// or from the HTTP/2 server once it has read the
			// connection preface. Look at ALPN once, here.
			if ts, ok := c.(tlsStater); ok && ts.ConnectionState().NegotiatedProtocol == "h2" {
				ci.h2.Store(true)
			}
		}
		// While a handler runs, net/http reads ahead on the
		// connection, to notice a client that goes away. That read
		// can take in the first bytes of the client's next request
		// before the connection is reported idle. Under TLS it
		// takes a whole record into the tls.Conn, so no later read
		// of the connection shows the request arriving. After a
		// request without a body, whatever the connection read
		// while the request was active is such a read ahead: the
		// next request has begun, and the connection is not silent.
		// (After a request with a body, a read while active may be
		// the body, so the drain only counts reads from the moment
		// the connection went idle.)
		early := state == http.StateIdle && prev == http.StateActive &&
			ci.bodyless.Load() && ci.rc != nil && ci.rc.lastRead.Load() > int64(prevAt)
		ci.state.Store(pack(state, now, early))
	case http.StateHijacked, http.StateClosed:
		// A hijacked connection belongs to its handler from now on.
		// Shutdown does not wait for it either. See Draining.
		if _, ok := s.conns.LoadAndDelete(c); ok {
			s.nconns.Add(-1)
		}
	}
	if s.started.Load() {
		s.wake()
	}
}

// listener lets Drain close a listener that http.Server.Serve also closes,
// lets Serve tell a close by the drain from a failure, and wraps the
// connections it accepts.
type listener struct {
	net.Listener
	s       *Server
	once    sync.Once
	err     error
	drained atomic.Bool
}

// Accept wraps the connection in a readConn, unless it is a *tls.Conn,
// which net/http needs as it is (ServeTLS wraps the connection under it).
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, ok := c.(*tls.Conn); ok {
		return c, nil
	}
	return &readConn{Conn: c, epoch: l.s.epoch}, nil
}

// readConn is a connection whose reads the drain sees. It keeps the
// optional methods net/http looks for on a connection: ReadFrom (sendfile)
// and CloseWrite.
type readConn struct {
	net.Conn
	epoch time.Time
	// lastRead is when a Read last returned bytes, as an offset from
	// epoch; 0 if none has.
	lastRead atomic.Int64
}

func (c *readConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(int64(time.Since(c.epoch)))
	}
	return n, err
}

// ReadFrom lets net/http send a file with sendfile through a TCP
// connection, as it does without the wrapper.
func (c *readConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite shuts down the writing side, if the connection has one to
// shut down.
func (c *readConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// NetConn returns the connection that the listener accepted.
func (c *readConn) NetConn() net.Conn { return c.Conn }

// unwrap returns the readConn of a connection that net/http serves, or nil.
func unwrap(c net.Conn) *readConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	rc, _ := c.(*readConn)
	return rc
}

func (l *listener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
