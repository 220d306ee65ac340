package drain_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/testcert"
	"github.com/tableflip-go/tableflip/tableflip/drain"
)

// timeout bounds every wait in these tests. It is generous for the race
// detector on a busy two-core machine. A passing run never waits for it.
const timeout = 30 * time.Second

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		panic("unreachable")
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// sharedListeners returns two listeners on one listening socket, as the old
// and the new generation hold it during an upgrade. Here both are in this
// process: the second is a duplicate of the first one's fd.
func sharedListeners(t *testing.T) (old, next net.Listener) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("net.FileListener is not supported on windows")
	}
	old = listen(t)
	f, err := old.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next, err = net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Close() })
	return old, next
}

// generation is one generation's HTTP server. Its handler answers with the
// generation's name.
type generation struct {
	name string
	srv  *http.Server
	d    *drain.Server
	done chan struct{} // closed when Serve has returned
	err  error         // what Serve returned
}

func serve(t *testing.T, name string, ln net.Listener, opts drain.Options, setup func(*http.Server)) *generation {
	t.Helper()
	return serveWith(t, name, opts, func(srv *http.Server) net.Listener {
		if setup != nil {
			setup(srv)
		}
		return ln
	})
}

// serveWith is serve for a setup that also chooses the listener.
func serveWith(t *testing.T, name string, opts drain.Options, setup func(*http.Server) net.Listener) *generation {
	t.Helper()
	g := &generation{name: name, done: make(chan struct{})}
	g.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, name)
		}),
		ReadHeaderTimeout: timeout,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ln := setup(g.srv)
	g.d = drain.New(g.srv, opts)
	go func() {
		g.err = g.d.Serve(ln)
		close(g.done)
	}()
	t.Cleanup(func() {
		g.srv.Close()
		select {
		case <-g.done:
		case <-time.After(timeout):
			t.Errorf("%s's Serve did not return after http.Server.Close", name)
		}
	})
	return g
}

// drain drains g within timeout.
func (g *generation) drain() error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return g.d.Drain(ctx)
}

// served waits for Serve to return and returns its result.
func (g *generation) served(t *testing.T) error {
	t.Helper()
	waitFor(t, g.done, g.name+"'s Serve to return")
	return g.err
}

// handover runs a load of clients against generation g1 (made by gen),
// brings up g2 on the shared socket, drains g1 while the clients go on,
// and returns what the clients saw once g2 has served them too, and how
// long g1's drain took. The load tells the generations by the pid=N in
// their answers: they are named "pid=1" and "pid=2".
func handover(t *testing.T, cfg loadtest.Config, gen func(name string, ln net.Listener) *generation) (loadtest.Stats, time.Duration) {
	t.Helper()
	oldLn, nextLn := sharedListeners(t)
	g1 := gen("pid=1", oldLn)
	cfg.URL = strings.Replace(cfg.URL, "ADDR", oldLn.Addr().String(), 1)
	l, err := loadtest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	waitEach := func(pid int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		// Every client has had 20 answers from the generation.
		if err := l.Wait(ctx, func(s *loadtest.Stats) bool {
			return s.Clients[pid] == cfg.Clients && s.ByPid[pid] >= int64(20*cfg.Clients)
		}); err != nil {
			t.Fatalf("waiting for every client to be served by pid=%d: %v; %v", pid, err, l.Stats())
		}
	}
	waitEach(1)

	// The next generation is ready: it accepts on the shared socket, and
	// the old one drains.
	g2 := gen("pid=2", nextLn)
	start := time.Now()
	if err := g1.drain(); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	took := time.Since(start)
	if err := g1.served(t); err != nil {
		t.Errorf("g1 Serve returned %v, want nil", err)
	}
	waitEach(2)
	st := l.Stop()
	if err := g2.drain(); err != nil {
		t.Errorf("g2 Drain: %v", err)
	}
	if st.Failures != 0 {
		t.Errorf("%d of %d requests failed; first errors:\n%v", st.Failures, st.Requests+st.Failures, strings.Join(st.Errors, "\n"))
	}
	return st, took
}

// http1 serves HTTP/1.1 for handover.
func http1(t *testing.T) func(name string, ln net.Listener) *generation {
	return func(name string, ln net.Listener) *generation { return serve(t, name, ln, drain.Options{}, nil) }
}

// checkProto fails the test unless every answer came over HTTP/major.
func checkProto(t *testing.T, st loadtest.Stats, major int) {
	t.Helper()
	if st.ByProto[major] != st.Requests {
		t.Errorf("answers per HTTP major version %v, want all %d over HTTP/%d", st.ByProto, st.Requests, major)
	}
}

// TestKeepAliveClientsLoseNothing: keep-alive clients (no retries) lose no
// request to a drain, and every connection that g1 closed was told first:
// its last answer carried "Connection: close".
func TestKeepAliveClientsLoseNothing(t *testing.T) {
	t.Parallel()
	st, took := handover(t, loadtest.Config{Target: loadtest.Target{URL: "http://ADDR/"}, Mode: loadtest.KeepAlive, Clients: 16}, http1(t))
	checkProto(t, st, 1)
	if st.Untold != 0 {
		t.Errorf("%d connections were closed by the server without Connection: close", st.Untold)
	}
	if st.Told == 0 {
		t.Error("no connection ended with Connection: close: g1 never told a client to move")
	}
	t.Logf("%v (g1 %d, g2 %d); %d connections ended with Connection: close; drain took %v",
		st, st.ByPid[1], st.ByPid[2], st.Told, took)
}

func TestNewConnectionPerRequestClientsLoseNothing(t *testing.T) {
	t.Parallel()
	st, took := handover(t, loadtest.Config{Target: loadtest.Target{URL: "http://ADDR/"}, Mode: loadtest.NewConnection, Clients: 16}, http1(t))
	checkProto(t, st, 1)
	t.Logf("%v (g1 %d, g2 %d); drain took %v", st, st.ByPid[1], st.ByPid[2], took)
}

// http2Variant is one way to serve HTTP/2.
type http2Variant struct {
	name string
	// setup configures a server for HTTP/2 and returns the listener it
	// serves.
	setup func(srv *http.Server, ln net.Listener) net.Listener
	// target is what the load's clients dial, with ADDR for the address.
	target loadtest.Target
	// scheme and transport make a client of one's own.
	scheme    string
	transport func() *http.Transport
}

func http2Variants(t *testing.T) []http2Variant {
	cert, pool, err := testcert.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return []http2Variant{{
		name: "TLS",
		setup: func(srv *http.Server, ln net.Listener) net.Listener {
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
			return tls.NewListener(ln, srv.TLSConfig)
		},
		target: loadtest.Target{URL: "https://ADDR/", TLS: &tls.Config{RootCAs: pool}},
		scheme: "https",
		transport: func() *http.Transport {
			return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		},
	}, {
		name: "unencrypted",
		setup: func(srv *http.Server, ln net.Listener) net.Listener {
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
			return ln
		},
		target: loadtest.Target{URL: "http://ADDR/"},
		scheme: "http",
		transport: func() *http.Transport {
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetUnencryptedHTTP2(true)
			return tr
		},
	}}
}

func (v http2Variant) serve(t *testing.T, name string, ln net.Listener, opts drain.Options) *generation {
	t.Helper()
	return serveWith(t, name, opts, func(srv *http.Server) net.Listener { return v.setup(srv, ln) })
}

func TestHTTP2ClientsLoseNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range http2Variants(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gen := func(name string, ln net.Listener) *generation { return tc.serve(t, name, ln, drain.Options{}) }
			// A retry after GOAWAY is HTTP/2 working as designed: the
			// server did not take the stream, and says so.
			cfg := loadtest.Config{Target: tc.target, Mode: loadtest.KeepAlive, Clients: 8, HTTP2: true, AllowRetries: true}
			st, took := handover(t, cfg, gen)
			checkProto(t, st, 2)
			t.Logf("%v (g1 %d, g2 %d); drain took %v", st, st.ByPid[1], st.ByPid[2], took)
		})
	}
}

// rawConn is an HTTP/1.1 client connection under the test's control.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr net.Addr) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) get(t *testing.T) *http.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: drain.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp
}

// waitClosed waits until the server has closed c.
func (c *rawConn) waitClosed(t *testing.T) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	b, err := c.br.ReadByte()
	if err == nil {
		t.Fatalf("read %q, want the connection closed", b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", timeout)
	}
}

func TestIdleAndNewConnectionsGetTheGrace(t *testing.T) {
	// Long enough that the test can reuse a connection within it on a
	// busy machine.
	const grace = time.Second
	ln := listen(t)
	accepted := make(chan string, 3)
	g := serve(t, "g1", ln, drain.Options{IdleGrace: grace}, func(srv *http.Server) {
		srv.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				accepted <- c.RemoteAddr().String()
			}
		}
	})

	idle := dialRaw(t, ln.Addr()) // answered once, then silent
	if resp := idle.get(t); resp.Close {
		t.Fatal("answer before the drain carried Connection: close")
	}
	reused := dialRaw(t, ln.Addr()) // answered once, then sends again during the grace
	reused.get(t)
	silent := dialRaw(t, ln.Addr()) // connected, never sends
	want := map[string]bool{idle.LocalAddr().String(): true, reused.LocalAddr().String(): true, silent.LocalAddr().String(): true}
	for len(want) > 0 {
		delete(want, recv(t, accepted, "the server to accept the connections"))
	}

	start := time.Now()
	drained := make(chan error, 1)
	go func() { drained <- g.drain() }()
	waitFor(t, g.d.Draining(), "the drain to begin")

	if resp := reused.get(t); !resp.Close {
		t.Error("a request during the grace was answered without Connection: close")
	}
	reused.waitClosed(t)
	for _, c := range []*rawConn{idle, silent} {
		c.waitClosed(t)
		if took := time.Since(start); took < grace {
			t.Errorf("connection closed %v after the drain began, before the grace of %v", took, grace)
		}
	}
	if err := recv(t, drained, "Drain to return"); err != nil {
		t.Errorf("Drain: %v", err)
	}
	if took := time.Since(start); took < grace {
		t.Errorf("Drain returned after %v, before the grace of %v", took, grace)
	}
	if err := g.served(t); err != nil {
		t.Errorf("Serve returned %v, want nil", err)
	}
}

func TestInFlightRequestFinishesBeforeDrainReturns(t *testing.T) {
	ln := listen(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	g := serve(t, "g1", ln, drain.Options{IdleGrace: 50 * time.Millisecond}, func(srv *http.Server) {
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			io.WriteString(w, "slow answer")
			finished.Store(true)
		})
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	type answer struct {
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{string(b), err}
	}()
	waitFor(t, entered, "the handler to start")

	type drainResult struct {
		err      error
		finished bool // whether the handler had finished when Drain returned
	}
	drained := make(chan drainResult, 1)
	go func() {
		err := g.drain()
		drained <- drainResult{err, finished.Load()}
	}()
	waitFor(t, g.d.Draining(), "the drain to begin")

	// A second Drain waits for the first one, until its own context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.d.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("second Drain with a canceled context returned %v, want context.Canceled", err)
	}
	select {
	case r := <-drained:
		t.Fatalf("Drain returned (%v) while a request was in flight", r.err)
	default:
	}

	close(release)
	a := recv(t, answered, "the answer")
	if a.err != nil || a.body != "slow answer" {
		t.Errorf("in-flight request: got %q, %v; want the answer", a.body, a.err)
	}
	r := recv(t, drained, "Drain to return")
	if r.err != nil {
		t.Errorf("Drain: %v", r.err)
	}
	if !r.finished {
		t.Error("Drain returned before the in-flight handler finished")
	}
	// Later calls return the first call's result.
	if err := g.drain(); err != nil {
		t.Errorf("Drain again: %v", err)
	}
}

func TestInFlightHandlerThatWroteNothingAnswersConnectionClose(t *testing.T) {
	ln := listen(t)
	entered, release := make(chan struct{}), make(chan struct{})
	g := serve(t, "g1", ln, drain.Options{}, func(srv *http.Server) {
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
		})
	})
	c := dialRaw(t, ln.Addr())
	answered := make(chan *http.Response, 1)
	go func() {
		// Not c.get: t.Fatal must not be called from this goroutine. A
		// failure shows as a missing answer.
		c.SetDeadline(time.Now().Add(timeout))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: drain.test\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			close(answered)
			return
		}
		answered <- resp
	}()
	waitFor(t, entered, "the handler to start")
	drained := make(chan error, 1)
	go func() { drained <- g.drain() }()
	waitFor(t, g.d.Draining(), "the drain to begin")
	close(release)
	resp := recv(t, answered, "the answer")
	if resp == nil {
		t.Fatal("no answer")
	}
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("got %s, Connection: close=%v; want 200 with Connection: close", resp.Status, resp.Close)
	}
	c.waitClosed(t)
	if err := recv(t, drained, "Drain to return"); err != nil {
		t.Errorf("Drain: %v", err)
	}
}

func TestDeadlineCutsTheDrainShort(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after every other cleanup
	ln := listen(t)
	entered, stop := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop) })
	g := serve(t, "g1", ln, drain.Options{IdleGrace: 50 * time.Millisecond}, func(srv *http.Server) {
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			select { // never answers; ends only when its connection is cut
			case <-r.Context().Done():
			case <-stop:
			}
		})
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	failed := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	waitFor(t, entered, "the handler to start")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := g.d.Drain(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain returned %v, want an error wrapping context.DeadlineExceeded", err)
	}
	var ie *drain.IncompleteError
	if !errors.As(err, &ie) || ie.Open != 1 {
		t.Errorf("Drain returned %#v, want an *IncompleteError with 1 open connection", err)
	}
	if err := recv(t, failed, "the cut request to fail"); err == nil {
		t.Error("the request the drain cut got an answer")
	}
	if err := g.served(t); err != nil {
		t.Errorf("Serve returned %v, want nil", err)
	}
	if again := g.drain(); again != err {
		t.Errorf("Drain again returned %v, want the first result %v", again, err)
	}
}

func TestUserHooksAreChainedAndDrainLogs(t *testing.T) {
	ln := listen(t)
	var (
		mu     sync.Mutex
		states = map[string][]http.ConnState{}
	)
	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(core)
	type userKey struct{}
	g := serve(t, "g1", ln, drain.Options{IdleGrace: 50 * time.Millisecond, Logger: logger}, func(srv *http.Server) {
		srv.ConnState = func(c net.Conn, st http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			states[c.RemoteAddr().String()] = append(states[c.RemoteAddr().String()], st)
		}
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, userKey{}, "from ConnContext")
		}
		srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, _ := r.Context().Value(userKey{}).(string)
			io.WriteString(w, v)
		})
	})
	c := dialRaw(t, ln.Addr())
	c.SetDeadline(time.Now().Add(timeout))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: drain.test\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "from ConnContext" {
		t.Errorf("handler saw %q, %v in its context; want the user's ConnContext value", body, err)
	}
	if err := g.drain(); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	// The user's hook runs before the drain's bookkeeping, so by the time
	// Drain has returned, it has seen StateClosed.
	mu.Lock()
	got := states[c.LocalAddr().String()]
	mu.Unlock()
	want := []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateClosed}
	if !slices.Equal(got, want) {
		t.Errorf("user ConnState saw %v, want %v", got, want)
	}
	for _, msg := range []string{"drain: started", "drain: shutting down", "drain: done"} {
		if logs.FilterMessage(msg).Len() != 1 {
			t.Errorf("log lacks %q: %v", msg, logs.All())
		}
	}
}

func TestServeAfterDrainClosesTheListener(t *testing.T) {
	d := drain.New(&http.Server{}, drain.Options{})
	if err := d.Drain(context.Background()); err != nil {
		t.Fatalf("Drain without Serve: %v", err)
	}
	ln := listen(t)
	if err := d.Serve(ln); err != nil {
		t.Errorf("Serve after Drain returned %v, want nil", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Serve returned %v, want net.ErrClosed", err)
	}
}

func TestDrainWhileServeStarts(t *testing.T) {
	for range 20 {
		ln := listen(t)
		d := drain.New(&http.Server{ErrorLog: log.New(io.Discard, "", 0)}, drain.Options{})
		served := make(chan error, 1)
		drained := make(chan error, 2)
		go func() { served <- d.Serve(ln) }()
		go func() { drained <- d.Drain(context.Background()) }()
		go func() { drained <- d.Drain(context.Background()) }()
		for range 2 {
			if err := recv(t, drained, "Drain to return"); err != nil {
				t.Errorf("Drain: %v", err)
			}
		}
		if err := recv(t, served, "Serve to return"); err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Serve returned %v, want net.ErrClosed", err)
		}
	}
}

func TestServeReportsADirectClose(t *testing.T) {
	g := serve(t, "g1", listen(t), drain.Options{}, nil)
	g.srv.Close()
	if err := g.served(t); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v after http.Server.Close, want http.ErrServerClosed", err)
	}
}

// An idle HTTP/2 connection cannot be told to leave in an answer, and
// closing it could race with a request. It gets a GOAWAY at once instead of
// waiting for the grace: the drain ends well before the grace would.
func TestIdleHTTP2ConnectionIsNotKeptForTheGrace(t *testing.T) {
	for _, tc := range http2Variants(t) {
		t.Run(tc.name, func(t *testing.T) {
			ln := listen(t)
			g := tc.serve(t, "g1", ln, drain.Options{IdleGrace: 2 * timeout})
			tr := tc.transport()
			t.Cleanup(tr.CloseIdleConnections)
			resp, err := (&http.Client{Transport: tr}).Get(tc.scheme + "://" + ln.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("answer over HTTP/%d, want HTTP/2", resp.ProtoMajor)
			}
			// The connection is idle now. Waiting for its grace would
			// outlast the drain's context.
			start := time.Now()
			if err := g.drain(); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			t.Logf("drain took %v", time.Since(start))
		})
	}
}
