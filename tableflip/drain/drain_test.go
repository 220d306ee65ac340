package drain_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
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

// result is one request made by a load client.
type result struct {
	conn     net.Conn // the connection that carried it, as GotConn saw it
	gen      string   // the generation that answered
	close    bool     // the answer carried "Connection: close"
	proto    int      // the answer's HTTP major version
	attempts int      // connections the client used; more than 1 is a retry
	err      error
}

// load is a set of clients that send requests back to back until stopped,
// like wrk does.
type load struct {
	url     string
	k       int // requests per client that reach a milestone
	clients []*loadClient
	marks   map[string]*milestone // per generation; read-only once started
	stop    chan struct{}
	wg      sync.WaitGroup
}

type loadClient struct {
	tr      *http.Transport
	hc      *http.Client
	results []result // written by the client's goroutine until it stops
}

// milestone is reached when every client has had k answers from one
// generation.
type milestone struct {
	left    atomic.Int32
	reached chan struct{}
}

func startLoad(t *testing.T, url string, clients, k int, transport func() *http.Transport, gens ...string) *load {
	t.Helper()
	l := &load{url: url, k: k, marks: map[string]*milestone{}, stop: make(chan struct{})}
	for _, g := range gens {
		m := &milestone{reached: make(chan struct{})}
		m.left.Store(int32(clients))
		l.marks[g] = m
	}
	for range clients {
		tr := transport()
		var dialer net.Dialer
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &clientConn{Conn: c}, nil
		}
		c := &loadClient{tr: tr, hc: &http.Client{Transport: tr}}
		l.clients = append(l.clients, c)
		t.Cleanup(tr.CloseIdleConnections)
	}
	t.Cleanup(l.finish)
	for _, c := range l.clients {
		l.wg.Add(1)
		go l.run(c)
	}
	return l
}

func (l *load) run(c *loadClient) {
	defer l.wg.Done()
	counts := map[string]int{}
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		r := c.do(l.url)
		c.results = append(c.results, r)
		if r.err != nil {
			continue
		}
		counts[r.gen]++
		if m := l.marks[r.gen]; m != nil && counts[r.gen] == l.k {
			if m.left.Add(-1) == 0 {
				close(m.reached)
			}
		}
	}
}

func (l *load) wait(t *testing.T, gen string) {
	t.Helper()
	waitFor(t, l.marks[gen].reached, fmt.Sprintf("every client to get %d answers from %s", l.k, gen))
}

// finish stops the clients and waits for them. It is idempotent.
func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	for _, c := range l.clients {
		c.tr.CloseIdleConnections()
	}
}

func (c *loadClient) do(url string) result {
	var (
		mu sync.Mutex
		r  result
	)
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		mu.Lock()
		defer mu.Unlock()
		r.attempts++
		r.conn = info.Conn
	}}
	ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(context.Background(), trace), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return result{err: err}
	}
	var res result
	resp, err := c.hc.Do(req)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
		res.gen, res.close, res.proto = string(body), resp.Close, resp.ProtoMajor
	}
	res.err = err
	mu.Lock()
	res.attempts, res.conn = r.attempts, r.conn
	mu.Unlock()
	return res
}

// clientConn is a client's connection. It records whether the server closed
// it before the client did.
type clientConn struct {
	net.Conn
	closing atomic.Bool // the client has begun to close it
	ended   atomic.Bool // a read failed before that: the server closed it
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !c.closing.Load() {
		c.ended.Store(true)
	}
	return n, err
}

func (c *clientConn) Close() error {
	c.closing.Store(true)
	return c.Conn.Close()
}

func (c *clientConn) closedByServer() bool { return c.ended.Load() }

// summary counts the results, and reports every failed request as a test
// error.
type summary struct {
	total, perGen1, perGen2, retried int
}

func (l *load) check(t *testing.T, wantProto int, retriesFail bool) summary {
	t.Helper()
	var s summary
	failed := 0
	for i, c := range l.clients {
		for _, r := range c.results {
			s.total++
			if r.err != nil {
				if failed++; failed <= 10 {
					t.Errorf("client %d: request failed: %v", i, r.err)
				}
				continue
			}
			switch r.gen {
			case "g1":
				s.perGen1++
			case "g2":
				s.perGen2++
			}
			if r.proto != wantProto {
				t.Errorf("client %d: answer over HTTP/%d, want HTTP/%d", i, r.proto, wantProto)
			}
			if r.attempts > 1 {
				s.retried++
				if retriesFail {
					t.Errorf("client %d: the transport used %d connections for one request: the first lost it", i, r.attempts)
				}
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed", failed, s.total)
	}
	return s
}

// handover runs clients made by newTransport against generation g1 (made
// by gen), brings up g2 on the shared socket, drains g1 while the clients
// go on, and returns the load, finished, and how long g1's drain took.
func handover(t *testing.T, scheme string, clients int, newTransport func() *http.Transport, gen func(name string, ln net.Listener) *generation) (*load, time.Duration) {
	t.Helper()
	oldLn, nextLn := sharedListeners(t)
	g1 := gen("g1", oldLn)
	l := startLoad(t, scheme+"://"+oldLn.Addr().String()+"/", clients, 20, newTransport, "g1", "g2")
	l.wait(t, "g1")

	// The next generation is ready: it accepts on the shared socket, and
	// the old one drains.
	g2 := gen("g2", nextLn)
	start := time.Now()
	if err := g1.drain(); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	took := time.Since(start)
	if err := g1.served(t); err != nil {
		t.Errorf("g1 Serve returned %v, want nil", err)
	}
	l.wait(t, "g2")
	l.finish()
	if err := g2.drain(); err != nil {
		t.Errorf("g2 Drain: %v", err)
	}
	return l, took
}

// http1 serves HTTP/1.1 for handover.
func http1(t *testing.T) func(name string, ln net.Listener) *generation {
	return func(name string, ln net.Listener) *generation { return serve(t, name, ln, drain.Options{}, nil) }
}

func TestKeepAliveClientsLoseNothing(t *testing.T) {
	l, took := handover(t, "http", 16, func() *http.Transport { return &http.Transport{MaxIdleConnsPerHost: 1} }, http1(t))
	s := l.check(t, 1, true)
	// Every connection to g1 has closed by now. Each one that g1 closed
	// must have been told first: its last answer carried "Connection:
	// close". A client may drop a connection on its own (Go's transport
	// does when its writer goroutine is late to confirm a write), which
	// this check tells apart by who closed first.
	told, dropped := 0, 0
	for i, c := range l.clients {
		last := map[net.Conn]result{}
		for _, r := range c.results {
			if r.err == nil && r.gen == "g1" {
				last[r.conn] = r
			}
		}
		if len(last) == 0 {
			t.Errorf("client %d: no answer from g1", i)
		}
		for conn, r := range last {
			switch {
			case r.close:
				told++
			case conn.(*clientConn).closedByServer():
				t.Errorf("client %d: g1 closed connection %s without Connection: close", i, conn.LocalAddr())
			default:
				dropped++
			}
		}
	}
	t.Logf("%d requests (g1 %d, g2 %d), 0 failed; %d connections to g1 ended with Connection: close, %d dropped by the client; drain took %v",
		s.total, s.perGen1, s.perGen2, told, dropped, took)
}

func TestNewConnectionPerRequestClientsLoseNothing(t *testing.T) {
	l, took := handover(t, "http", 16, func() *http.Transport { return &http.Transport{DisableKeepAlives: true} }, http1(t))
	s := l.check(t, 1, true)
	t.Logf("%d requests (g1 %d, g2 %d), 0 failed; drain took %v", s.total, s.perGen1, s.perGen2, took)
}

// http2Variant is one way to serve HTTP/2.
type http2Variant struct {
	name   string
	scheme string
	// setup configures a server for HTTP/2 and returns the listener it
	// serves.
	setup     func(srv *http.Server, ln net.Listener) net.Listener
	transport func() *http.Transport
}

func http2Variants(t *testing.T) []http2Variant {
	cert, pool, err := testcert.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return []http2Variant{{
		name:   "TLS",
		scheme: "https",
		setup: func(srv *http.Server, ln net.Listener) net.Listener {
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
			return tls.NewListener(ln, srv.TLSConfig)
		},
		transport: func() *http.Transport {
			return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		},
	}, {
		name:   "unencrypted",
		scheme: "http",
		setup: func(srv *http.Server, ln net.Listener) net.Listener {
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
			return ln
		},
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
	for _, tc := range http2Variants(t) {
		t.Run(tc.name, func(t *testing.T) {
			gen := func(name string, ln net.Listener) *generation { return tc.serve(t, name, ln, drain.Options{}) }
			l, took := handover(t, tc.scheme, 8, tc.transport, gen)
			// A retry after GOAWAY is HTTP/2 working as designed: the
			// server did not take the stream, and says so.
			s := l.check(t, 2, false)
			t.Logf("%d requests (g1 %d, g2 %d), 0 failed, %d retried by the client after GOAWAY; drain took %v",
				s.total, s.perGen1, s.perGen2, s.retried, took)
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
	if !strings.Contains(err.Error(), "1 connection(s) still open") {
		t.Errorf("error %q does not say how many connections were open", err)
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
