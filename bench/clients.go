package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// A sample is one request as a client saw it.
type sample struct {
	at      time.Duration // since the run's start, when the request was sent
	lat     time.Duration
	failed  bool
	resumed bool // HTTPS: the TLS session was resumed
	client  int  // which client sent it
	pid     int  // the generation that answered, 0 for a failure
}

// clientKind is how a load's clients talk to the server.
type clientKind int

const (
	httpNewConn   clientKind = iota // a new TCP connection per request
	httpKeepAlive                   // one keep-alive connection per client
	unixNewConn                     // HTTP over a unix socket, a new connection per request
	httpsResume                     // HTTPS, a new connection per request, resuming the TLS session
	udpEcho                         // one datagram, one answer
	quicEcho                        // QUIC "echo": long-lived connections, a stream per request
)

// quicLifetime is how long a QUIC client keeps its connection before it
// closes it and dials again: across an upgrade or two at the usual
// interval, and short enough that an old generation, which serves its
// connections until they close, exits soon after the upgrade.
const quicLifetime = time.Second

// recorder is a running set of clients that records every request.
type recorder struct {
	kind    clientKind
	start   time.Time
	timeout time.Duration
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	samples []sample
	errs    map[string]int64 // failures by kind of error
	first   []string         // the first failure messages
	byPid   map[int]int64
	changed chan struct{}
	dialed  int64 // QUIC: connections opened
	broken  int64 // QUIC: connections that failed a request, dropped for a new one
}

// startClients starts n clients of kind against addr (host:port, or a
// socket path for unixNewConn). Times are relative to start.
func startClients(kind clientKind, addr string, n int, start time.Time) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{kind: kind, start: start, timeout: 5 * time.Second, cancel: cancel,
		errs: map[string]int64{}, byPid: map[int]int64{}}
	for i := range n {
		r.wg.Go(func() {
			switch kind {
			case udpEcho:
				r.runUDP(ctx, i, addr)
			case quicEcho:
				r.runQUIC(ctx, i, addr)
			default:
				r.runHTTP(ctx, i, addr)
			}
		})
	}
	return r
}

func (r *recorder) record(s sample, pid int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.failed = err != nil
	s.pid = pid
	r.samples = append(r.samples, s)
	if err != nil {
		r.errs[errKind(err)]++
		if len(r.first) < 8 {
			r.first = append(r.first, fmt.Sprintf("%.3fs: %v", s.at.Seconds(), err))
		}
	} else {
		r.byPid[pid]++
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// waitServed waits until pid has answered n requests, or ctx ends.
func (r *recorder) waitServed(ctx context.Context, pid int, n int64) error {
	for {
		r.mu.Lock()
		if r.byPid[pid] >= n {
			r.mu.Unlock()
			return nil
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("pid %d did not answer %d requests: %w", pid, n, ctx.Err())
		}
	}
}

// stop ends the clients and returns every sample, in time order.
func (r *recorder) stop() []sample {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.SortFunc(r.samples, func(a, b sample) int { return int(a.at - b.at) })
	return r.samples
}

// errKind names a failure the way a reader of the tables wants it.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ENOENT):
		return "no socket file"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "EOF"):
		return "EOF"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, new(*quic.ApplicationError)), errors.As(err, new(*quic.TransportError)):
		return "connection closed by the server"
	case errors.As(err, new(*quic.StatelessResetError)):
		return "stateless reset"
	case errors.As(err, new(*quic.IdleTimeoutError)), errors.As(err, new(*quic.HandshakeTimeoutError)):
		return "timeout"
	case strings.Contains(err.Error(), "lost"):
		return "lost"
	case strings.Contains(err.Error(), "status"):
		return "non-200"
	}
	return "other"
}

func (r *recorder) runHTTP(ctx context.Context, id int, addr string) {
	var d net.Dialer
	tr := &http.Transport{
		DisableKeepAlives:   r.kind != httpKeepAlive,
		MaxIdleConnsPerHost: 1,
		DialContext:         d.DialContext,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1
	}
	url := "http://" + addr + "/"
	switch r.kind {
	case unixNewConn:
		url = "http://unix/"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", addr)
		}
	case httpsResume:
		url = "https://" + addr + "/"
		tr.TLSClientConfig = &tls.Config{
			InsecureSkipVerify: true, // the bench's own self-signed certificate
			ClientSessionCache: tls.NewLRUClientSessionCache(4),
			NextProtos:         []string{"http/1.1"},
		}
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: r.timeout}
	for ctx.Err() == nil {
		sent := time.Now()
		pid, resumed, err := get(ctx, client, url)
		if ctx.Err() != nil {
			return // interrupted by stop: not counted
		}
		r.record(sample{at: sent.Sub(r.start), lat: time.Since(sent), resumed: resumed, client: id}, pid, err)
	}
}

// noRetryBody makes a GET non-replayable, so that net/http does not retry
// it silently on a reused connection: every failure the server causes is
// counted, as wrk and most non-Go clients see it.
type noRetryBody struct{}

func (noRetryBody) Read([]byte) (int, error) { return 0, io.EOF }
func (noRetryBody) Close() error             { return nil }

func get(ctx context.Context, client *http.Client, url string) (pid int, resumed bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, err
	}
	req.Body = noRetryBody{}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, false, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("status %s", resp.Status)
	}
	pid, ok := loadtest.ParsePID(body)
	if !ok {
		return 0, false, fmt.Errorf("no pid in %q", body)
	}
	return pid, resp.TLS != nil && resp.TLS.DidResume, nil
}

var errLost = errors.New("datagram lost: no answer within the timeout")

// runUDP sends one datagram at a time and waits for its answer,
// "pid=N <the datagram>"; an answer that does not come within a second is
// lost.
func (r *recorder) runUDP(ctx context.Context, id int, addr string) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		r.record(sample{at: time.Since(r.start)}, 0, err)
		return
	}
	defer conn.Close()
	context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	buf := make([]byte, 512)
	for seq := 0; ctx.Err() == nil; seq++ {
		msg := "c" + strconv.Itoa(id) + "-" + strconv.Itoa(seq)
		sent := time.Now()
		if _, err := conn.Write([]byte(msg)); err != nil {
			r.record(sample{at: sent.Sub(r.start)}, 0, err)
			continue
		}
		conn.SetReadDeadline(sent.Add(time.Second))
		pid, err := readAnswer(conn, buf, msg)
		if ctx.Err() != nil {
			return
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			err = errLost
		}
		r.record(sample{at: sent.Sub(r.start), lat: time.Since(sent)}, pid, err)
	}
}

// readAnswer reads until the answer to msg, skipping late answers to
// earlier datagrams.
func readAnswer(conn net.Conn, buf []byte, msg string) (int, error) {
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				// The ICMP error of an earlier datagram sent while no
				// socket was bound: this one may still be answered.
				continue
			}
			return 0, err
		}
		pid, ok := loadtest.ParsePID(buf[:n])
		if ok && strings.HasSuffix(string(buf[:n]), " "+msg) {
			return pid, nil
		}
	}
}

// runQUIC holds one QUIC connection at a time, sends a request on a new
// stream after each answer, and replaces the connection after
// quicLifetime, or at once when a request on it fails (a broken
// connection).
func (r *recorder) runQUIC(ctx context.Context, id int, addr string) {
	tlsConf := &tls.Config{
		InsecureSkipVerify: true, // the servers' own certificates
		NextProtos:         []string{"echo"},
	}
	qconf := &quic.Config{MaxIdleTimeout: r.timeout, HandshakeIdleTimeout: r.timeout}
	msg := []byte("c" + strconv.Itoa(id))
	for ctx.Err() == nil {
		sent := time.Now()
		c, err := quic.DialAddr(ctx, addr, tlsConf, qconf)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.record(sample{at: sent.Sub(r.start), lat: time.Since(sent), client: id}, 0, fmt.Errorf("dial: %w", err))
			continue
		}
		r.mu.Lock()
		r.dialed++
		r.mu.Unlock()
		for born := time.Now(); ctx.Err() == nil && time.Since(born) < quicLifetime; {
			sent := time.Now()
			pid, err := quicRequest(ctx, c, msg, r.timeout)
			if ctx.Err() != nil {
				break
			}
			r.record(sample{at: sent.Sub(r.start), lat: time.Since(sent), client: id}, pid, err)
			if err != nil {
				r.mu.Lock()
				r.broken++
				r.mu.Unlock()
				break
			}
		}
		c.CloseWithError(0, "")
	}
}

// quicRequest opens a stream on c, writes msg, closes its side and reads
// the answer, "pid=N".
func quicRequest(ctx context.Context, c *quic.Conn, msg []byte, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	s.SetDeadline(time.Now().Add(timeout))
	if _, err := s.Write(msg); err != nil {
		s.CancelRead(0)
		return 0, err
	}
	s.Close()
	body, err := io.ReadAll(io.LimitReader(s, 512))
	if err != nil {
		s.CancelRead(0)
		return 0, err
	}
	pid, ok := loadtest.ParsePID(body)
	if !ok {
		return 0, fmt.Errorf("no pid in %q", body)
	}
	return pid, nil
}

// rssKiB is the resident set of pid in KiB.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// openFds counts the open files of pid.
func openFds(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}
