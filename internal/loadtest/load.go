package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how a client uses connections.
type Mode int

const (
	// NewConnection opens a new connection for every request
	// (http.Transport.DisableKeepAlives). It sees refused connections and
	// requests the server accepted but never answered.
	NewConnection Mode = iota
	// KeepAlive keeps one connection per client open for as long as the
	// server allows, and opens a new one when the server closes it (for
	// example after answering with "Connection: close"). It sees
	// keep-alive connections closed under its feet.
	KeepAlive
)

func (m Mode) String() string {
	switch m {
	case NewConnection:
		return "new-connection"
	case KeepAlive:
		return "keep-alive"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Target is where a server answers.
type Target struct {
	// URL is requested with GET, for example "http://127.0.0.1:8080/" or
	// "https://localhost:8443/". With UnixSocket set, the URL's host only
	// fills the Host header.
	URL string
	// UnixSocket, if set, is the path of the unix socket every connection
	// dials instead of the URL's host.
	UnixSocket string
	// TLS is the client configuration for an https URL (for a self-signed
	// server: its RootCAs, or InsecureSkipVerify). Nil means the defaults.
	TLS *tls.Config
}

// Config describes a load: Clients goroutines that each send one request
// after the other, as fast as the server answers.
type Config struct {
	Target
	// Mode is how each client uses connections.
	Mode Mode
	// Clients is the number of concurrent clients. Zero means 8.
	Clients int
	// Timeout bounds one request, connection included. Zero means 10s.
	Timeout time.Duration
	// MaxErrors is how many failure messages Stats keeps (the first
	// ones). Zero means 10.
	MaxErrors int
	// AllowRetries lets net/http silently retry a request that failed on
	// a reused keep-alive connection, as a default Go client does. Off by
	// default, so that every connection-level failure the server causes is
	// counted, like wrk and most non-Go clients would see it.
	AllowRetries bool
	// HTTP2 makes the clients speak HTTP/2: negotiated by ALPN over TLS,
	// with prior knowledge (unencrypted HTTP/2) over http. Off: HTTP/1.1
	// only, even over TLS. An HTTP/2 client retries the requests a GOAWAY
	// turned away only with AllowRetries.
	HTTP2 bool
}

// Stats is what the clients of a Load saw.
type Stats struct {
	// Mode of the clients.
	Mode Mode
	// Requests counts the requests answered with 200 and a body that
	// holds "pid=N".
	Requests int64
	// Failures counts every other outcome: a dial, write or read error, a
	// timeout, another status, a body without a pid.
	Failures int64
	// Errors are the first Config.MaxErrors failures, each prefixed with
	// the client number.
	Errors []string
	// ByPid counts the successful requests per pid that served them.
	ByPid map[int]int64
	// Pids lists the serving pids in the order they first answered.
	Pids []int
	// Clients counts, per pid, the clients that it answered at least
	// once.
	Clients map[int]int
	// ByProto counts the successful requests per HTTP major version.
	ByProto map[int]int64
	// Told counts the connections whose last answer carried
	// "Connection: close". Untold counts those that the server closed
	// without that, after answering at least once on them: it cut them
	// under an idle client, and a request the client sent at that moment
	// would have been lost. A connection that the client closed first
	// without being told is in neither. Complete once Stop has returned.
	Told, Untold int64
}

// String summarizes s on one line.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d requests, %d failures, %d serving pids", s.Mode, s.Requests, s.Failures, len(s.Pids))
	if s.Untold > 0 {
		fmt.Fprintf(&b, ", %d connections closed by the server without Connection: close", s.Untold)
	}
	if len(s.Errors) > 0 {
		fmt.Fprintf(&b, "; first errors: %s", strings.Join(s.Errors, "; "))
	}
	return b.String()
}

// Load is a running set of clients. Create it with Start, end it with Stop.
type Load struct {
	cfg    Config
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	stats   Stats
	served  map[int]map[int]bool // pid -> clients it answered
	conns   []*clientConn        // every connection dialed
	changed chan struct{}        // closed and replaced when stats change and someone waits
}

// Start starts cfg.Clients clients. They run until Stop.
func Start(cfg Config) (*Load, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxErrors <= 0 {
		cfg.MaxErrors = 10
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("loadtest: target URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("loadtest: target URL %q: want http or https", cfg.URL)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cfg: cfg, cancel: cancel, served: map[int]map[int]bool{},
		stats: Stats{Mode: cfg.Mode, ByPid: map[int]int64{}, Clients: map[int]int{}, ByProto: map[int]int64{}}}
	for i := range cfg.Clients {
		client := l.newClient()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer client.CloseIdleConnections()
			l.runClient(ctx, i, client)
		}()
	}
	return l, nil
}

// newClient makes one client with its own transport, so that each
// keep-alive client holds exactly one connection of its own.
func (l *Load) newClient() *http.Client {
	var d net.Dialer
	network, address := "", ""
	if path := l.cfg.UnixSocket; path != "" {
		network, address = "unix", path
	}
	tr := &http.Transport{
		DisableKeepAlives:   l.cfg.Mode == NewConnection,
		MaxIdleConnsPerHost: 1,
		TLSClientConfig:     l.cfg.TLS.Clone(), // HTTP/2 adds to its NextProtos
		DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
			if network != "" {
				n, a = network, address
			}
			c, err := d.DialContext(ctx, n, a)
			if err != nil {
				return nil, err
			}
			cc := &clientConn{Conn: c}
			l.mu.Lock()
			l.conns = append(l.conns, cc)
			l.mu.Unlock()
			return cc, nil
		},
	}
	switch {
	case !l.cfg.HTTP2:
		// Keep the judge simple: HTTP/1.1 only, even over TLS.
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	case strings.HasPrefix(l.cfg.URL, "https:"):
		tr.ForceAttemptHTTP2 = true
	default:
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr, Timeout: l.cfg.Timeout}
}

// clientConn is a client's connection. It records whether the server
// closed it before the client did, and whether the last answer on it
// carried "Connection: close".
type clientConn struct {
	net.Conn
	closing atomic.Bool // the client has begun to close it
	ended   atomic.Bool // a read failed before that: the server closed it
	answers atomic.Int64
	told    atomic.Bool // the last answer carried "Connection: close"
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

func (l *Load) runClient(ctx context.Context, id int, client *http.Client) {
	for ctx.Err() == nil {
		pid, proto, err := l.get(ctx, client)
		if ctx.Err() != nil {
			return // Stop interrupted this request: it is not counted
		}
		l.record(id, pid, proto, err)
	}
}

// noRetryBody makes a GET non-replayable, which is the only way to stop
// net/http from retrying it on a reused connection. It is empty, so no body
// is sent.
type noRetryBody struct{}

func (noRetryBody) Read([]byte) (int, error) { return 0, io.EOF }
func (noRetryBody) Close() error             { return nil }

func (l *Load) get(ctx context.Context, client *http.Client) (pid, proto int, err error) {
	var last atomic.Pointer[clientConn] // the connection of the last attempt
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		c := info.Conn
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		if cc, ok := c.(*clientConn); ok {
			last.Store(cc)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, l.cfg.URL, nil)
	if err != nil {
		return 0, 0, err
	}
	if !l.cfg.AllowRetries {
		req.Body = noRetryBody{}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if conn := last.Load(); conn != nil {
		conn.answers.Add(1)
		conn.told.Store(resp.Close)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, 0, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("status %s, body %q", resp.Status, truncate(body))
	}
	pid, ok := ParsePID(body)
	if !ok {
		return 0, 0, fmt.Errorf("no pid=N in body %q", truncate(body))
	}
	return pid, resp.ProtoMajor, nil
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// ParsePID finds "pid=N" in an answer body, at its start or after a space
// or a newline.
func ParsePID(body []byte) (int, bool) {
	for rest := body; ; {
		i := bytes.Index(rest, []byte("pid="))
		if i < 0 {
			return 0, false
		}
		if i == 0 || rest[i-1] == ' ' || rest[i-1] == '\n' || rest[i-1] == '\t' {
			digits := rest[i+4:]
			n := 0
			for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
				n++
			}
			if pid, err := strconv.Atoi(string(digits[:n])); err == nil && pid > 0 {
				return pid, true
			}
		}
		rest = rest[i+4:]
	}
}

func (l *Load) record(id, pid, proto int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.stats.Failures++
		if len(l.stats.Errors) < l.cfg.MaxErrors {
			l.stats.Errors = append(l.stats.Errors, fmt.Sprintf("client %d: %v", id, err))
		}
	} else {
		l.stats.Requests++
		if _, seen := l.stats.ByPid[pid]; !seen {
			l.stats.Pids = append(l.stats.Pids, pid)
		}
		l.stats.ByPid[pid]++
		l.stats.ByProto[proto]++
		if l.served[pid] == nil {
			l.served[pid] = map[int]bool{}
		}
		if !l.served[pid][id] {
			l.served[pid][id] = true
			l.stats.Clients[pid]++
		}
	}
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// Stats returns a copy of what the clients saw so far.
func (l *Load) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Errors = slices.Clone(s.Errors)
	s.Pids = slices.Clone(s.Pids)
	s.ByPid = maps.Clone(l.stats.ByPid)
	s.Clients = maps.Clone(l.stats.Clients)
	s.ByProto = maps.Clone(l.stats.ByProto)
	for _, c := range l.conns {
		switch {
		case c.answers.Load() == 0:
		case c.told.Load():
			s.Told++
		case c.ended.Load():
			s.Untold++
		}
	}
	return s
}

// ErrNotServed is wrapped by WaitServed's error when ctx ends first.
var ErrNotServed = errors.New("loadtest: not served")

// WaitServed waits until pid has answered at least n requests of this
// load, or ctx is done (then the error wraps ErrNotServed and ctx's cause,
// and says what was seen). Without a deadline on ctx it waits at most
// DefaultTimeout.
func (l *Load) WaitServed(ctx context.Context, pid int, n int64) error {
	err := l.Wait(ctx, func(s *Stats) bool { return s.ByPid[pid] >= n })
	if err != nil {
		s := l.Stats()
		return fmt.Errorf("%w: pid %d answered %d of the %d requests waited for (%d requests, %d failures in all): %w",
			ErrNotServed, pid, s.ByPid[pid], n, s.Requests, s.Failures, err)
	}
	return nil
}

// Wait waits until done returns true, or ctx is done (then it returns
// ctx's cause). done is called with the live statistics after every
// request, under the Load's lock: it must be quick, and must neither keep
// nor change s. Without a deadline on ctx, Wait waits at most
// DefaultTimeout.
func (l *Load) Wait(ctx context.Context, done func(s *Stats) bool) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		l.mu.Lock()
		if done(&l.stats) {
			l.mu.Unlock()
			return nil
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Stop stops the clients, waits for them, and returns what they saw. A
// request that Stop interrupts is not counted. Stop is idempotent.
func (l *Load) Stop() Stats {
	l.cancel()
	l.wg.Wait()
	return l.Stats()
}

// DefaultTimeout bounds every wait of this package whose context has no
// deadline. A passing test never reaches it.
var DefaultTimeout = 60 * time.Second

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}
