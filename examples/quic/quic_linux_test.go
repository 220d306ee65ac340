package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// server is a running examples/quic whose generations the test upgrades
// itself (SIGHUP, then the new generation's ready line), since old
// generations stay alive while their connections last.
type server struct {
	*exampletest.Server
	addr   string
	pids   []int       // every generation, oldest first
	pidfds map[int]int // a pidfd of each, to wait for its exit
	killed map[int]bool
	next   int // where the next ready line is looked for in stdout
}

func start(t *testing.T, args ...string) *server {
	t.Helper()
	s := &server{Server: program.Start(t, append([]string{"-addr", "127.0.0.1:0"}, args...)...)}
	line := s.waitReady(t, s.PID())
	s.addr = field(line, "addr")
	return s
}

func (s *server) waitReady(t *testing.T, pid int) string {
	t.Helper()
	line, next := s.Stdout.Wait(t, s.next, "ready pid="+strconv.Itoa(pid)+" ")
	s.next = next
	s.track(t, pid)
	return line
}

func (s *server) track(t *testing.T, pid int) {
	t.Helper()
	if s.pidfds == nil {
		s.pidfds = map[int]int{}
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd of generation %d: %v", pid, err)
	}
	s.pids = append(s.pids, pid)
	s.pidfds[pid] = fd
	t.Cleanup(func() { unix.Close(fd) })
}

// exited waits until generation pid has exited, within timeout.
func (s *server) exited(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(s.pidfds[pid]), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			syscall.Kill(pid, syscall.SIGQUIT) // its goroutines, in the log
			t.Fatalf("generation %d still running after %v", pid, timeout)
		}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
}

// stop sends SIGTERM to the serving generation and waits until every
// generation has exited; those reparented to the test (all but the
// first, which the harness reaps) must have exited with status 0.
func (s *server) stop(t *testing.T) {
	t.Helper()
	closeAll(clients)
	clients = nil
	if err := syscall.Kill(s.current(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, pid := range s.pids {
		s.exited(t, pid, 30*time.Second)
		if pid == s.pids[0] || s.killed[pid] {
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			if !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("generation %d: wait status %#x, want exit status 0", pid, ws)
			}
		}
	}
}

func (s *server) current() int { return s.pids[len(s.pids)-1] }

// upgrade sends SIGHUP to the serving generation and waits for the next
// one's ready line; it returns the new pid.
func (s *server) upgrade(t *testing.T) int {
	t.Helper()
	old := s.current()
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, next := s.Stdout.Wait(t, s.next, "ready pid=", "generation="+strconv.Itoa(len(s.pids)+1)+" ")
	s.next = next
	pid, err := strconv.Atoi(field(line, "pid"))
	if err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	s.track(t, pid)
	return pid
}

// waitDrained waits for generation pid's log line saying it has drained.
func (s *server) waitDrained(t *testing.T, pid int) string {
	t.Helper()
	line, _ := s.Stderr.Wait(t, 0, `"msg":"drained"`, `"pid":`+strconv.Itoa(pid)+`,`)
	return line
}

func field(line, name string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

var clientTLS = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"echo"}}

// clientConf keeps idle connections alive: they break only if the server
// loses them.
var clientConf = &quic.Config{KeepAlivePeriod: time.Second, MaxIdleTimeout: 20 * time.Second, HandshakeIdleTimeout: 10 * time.Second}

func dial(t testing.TB, addr string) *quic.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := quic.DialAddr(ctx, addr, clientTLS, clientConf)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.CloseWithError(0, "") })
	clients = append(clients, c)
	return c
}

// clients are the connections dial made; stop closes them first, as
// clients that are done do, so that the last generation's drain ends.
var clients []*quic.Conn

// ask opens a stream, writes a few bytes, closes its side and returns the
// pid the server answered with.
func ask(c *quic.Conn) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	s.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := s.Write([]byte("hello")); err != nil {
		return 0, err
	}
	s.Close()
	b, err := io.ReadAll(s)
	if err != nil {
		return 0, err
	}
	v, ok := strings.CutPrefix(string(b), "pid=")
	if !ok {
		return 0, fmt.Errorf("answer %q, want pid=<pid>", b)
	}
	return strconv.Atoi(v)
}

func mustAsk(t testing.TB, c *quic.Conn, want int) {
	t.Helper()
	pid, err := ask(c)
	if err != nil {
		t.Fatalf("connection to pid %d: %v", want, err)
	}
	if want != 0 && pid != want {
		t.Fatalf("answered by pid %d, want %d (the generation that first answered)", pid, want)
	}
}

// closeAll closes conns as a client that is done does.
func closeAll(conns []*quic.Conn) {
	for _, c := range conns {
		c.CloseWithError(0, "done")
	}
}

// Sixteen long-lived connections across one upgrade: each keeps being
// answered by the generation that accepted it, none breaks, and the old
// generation exits once they have closed, well before its deadline.
func TestLongLivedConnectionsAcrossUpgrade(t *testing.T) {
	s := start(t, "-drain", "60s")
	old := s.current()
	conns := make([]*quic.Conn, 16)
	for i := range conns {
		conns[i] = dial(t, s.addr)
		mustAsk(t, conns[i], old)
	}
	niu := s.upgrade(t)
	// Requests on the old connections while both generations run, and
	// after: all answered by the old one.
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make(chan error, len(conns))
		for _, c := range conns {
			wg.Go(func() {
				if pid, err := ask(c); err != nil || pid != old {
					errs <- fmt.Errorf("round %d: pid %d, %v (want %d)", round, pid, err, old)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	mustAsk(t, dial(t, s.addr), niu)
	closeAll(conns)
	line := s.waitDrained(t, old)
	if !strings.Contains(line, `"deadline":false`) {
		t.Errorf("old generation: %s; want drained without its deadline", line)
	}
	s.stop(t)
}

// Ten upgrades in a row, with new long-lived connections in every
// generation: every connection is answered to the end by the generation
// that first answered it, and connections dialed while each upgrade runs
// all succeed.
func TestTenUpgrades(t *testing.T) {
	const upgrades = 10
	s := start(t, "-drain", "120s")
	type owned struct {
		c   *quic.Conn
		pid int
	}
	var conns []owned
	dialed := 0
	for g := 0; g <= upgrades; g++ {
		for range 3 {
			c := dial(t, s.addr)
			mustAsk(t, c, s.current())
			conns = append(conns, owned{c, s.current()})
		}
		if g == upgrades {
			break
		}
		// Dial during the upgrade.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []error
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					c, err := quic.DialAddr(ctx, s.addr, clientTLS, clientConf)
					cancel()
					if err == nil {
						_, err = ask(c)
						c.CloseWithError(0, "")
					}
					mu.Lock()
					dialed++
					if err != nil {
						failures = append(failures, err)
					}
					mu.Unlock()
				}
			})
		}
		s.upgrade(t)
		close(stop)
		wg.Wait()
		for _, err := range failures {
			t.Errorf("dial during upgrade %d: %v", g+1, err)
		}
		for _, o := range conns {
			mustAsk(t, o.c, o.pid)
		}
	}
	for _, o := range conns {
		mustAsk(t, o.c, o.pid)
		o.c.CloseWithError(0, "done")
	}
	for _, pid := range s.pids[:len(s.pids)-1] {
		s.waitDrained(t, pid)
	}
	t.Logf("%d connections over %d generations, %d dialed during upgrades", len(conns), len(s.pids), dialed)
	s.stop(t)
}

// At its drain deadline the old generation closes its connections with
// CONNECTION_CLOSE, which the clients see at once, not at their idle
// timeout.
func TestDrainDeadlineClosesConnections(t *testing.T) {
	const drain = 2 * time.Second
	s := start(t, "-drain", drain.String())
	old := s.current()
	c := dial(t, s.addr)
	mustAsk(t, c, old)
	s.upgrade(t)
	upgraded := time.Now()
	select {
	case <-c.Context().Done():
	case <-time.After(drain + 10*time.Second):
		t.Fatal("connection still open 10s after the drain deadline")
	}
	late := time.Since(upgraded) - drain
	var appErr *quic.ApplicationError
	if err := context.Cause(c.Context()); !errors.As(err, &appErr) || !appErr.Remote {
		t.Fatalf("connection ended with %v, want the server's CONNECTION_CLOSE", err)
	}
	if late > time.Second {
		t.Errorf("CONNECTION_CLOSE came %v after the deadline, want within 1s", late)
	}
	t.Logf("CONNECTION_CLOSE %v after the drain deadline", late.Round(time.Millisecond))
	s.waitDrained(t, old)
	s.stop(t)
}

// A SIGKILLed old generation's clients learn from the new generation's
// stateless reset that their connection is over, within a second.
func TestKilledGenerationStatelessReset(t *testing.T) {
	s := start(t, "-drain", "60s")
	old := s.current()
	c := dial(t, s.addr)
	mustAsk(t, c, old)
	s.upgrade(t)
	mustAsk(t, c, old)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.killed = map[int]bool{old: true}
	s.exited(t, old, 10*time.Second)
	killed := time.Now()
	// The next packet the client sends (a request) reaches the new
	// generation, whose forward to the dead one is refused.
	go ask(c)
	select {
	case <-c.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("no stateless reset within 10s")
	}
	var reset *quic.StatelessResetError
	if err := context.Cause(c.Context()); !errors.As(err, &reset) {
		t.Fatalf("connection ended with %v, want a stateless reset", err)
	}
	if d := time.Since(killed); d > time.Second {
		t.Errorf("stateless reset %v after the kill, want within 1s", d)
	} else {
		t.Logf("stateless reset %v after the kill", d.Round(time.Millisecond))
	}
	mustAsk(t, dial(t, s.addr), s.current())
	s.stop(t)
}

func clientTransport(t *testing.T) *quic.Transport {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	t.Cleanup(func() { tr.Close(); pc.Close() })
	return tr
}

// A client that moves to a new address after the handover keeps being
// answered by the generation that owns its connection: routing is by
// connection ID, not address.
func TestMigrationAfterHandover(t *testing.T) {
	s := start(t, "-drain", "60s")
	old := s.current()
	// A single-use transport (quic.DialAddr) cannot migrate.
	tr1 := clientTransport(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raddr, err := net.ResolveUDPAddr("udp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tr1.Dial(ctx, raddr, clientTLS, clientConf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	mustAsk(t, c, old)
	s.upgrade(t)
	mustAsk(t, c, old)

	tr := clientTransport(t)
	pc := tr.Conn
	path, err := c.AddPath(tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := path.Probe(ctx); err != nil {
		t.Fatalf("probe new path: %v", err)
	}
	if err := path.Switch(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustAsk(t, c, old)
	}
	if got := c.LocalAddr().String(); got != pc.LocalAddr().String() {
		t.Errorf("client address %s after the switch, want %s", got, pc.LocalAddr())
	}
	c.CloseWithError(0, "done")
	s.waitDrained(t, old)
	s.stop(t)
}

// HTTP/3 clients making requests all along: none fails over ten upgrades.
// Old generations send GOAWAY when they drain, so new requests go to new
// connections, to the new generation. A request that crosses the GOAWAY
// is rejected unprocessed (H3_REQUEST_REJECTED) and retried once, as RFC
// 9114 allows; the retry must succeed.
func TestHTTP3TenUpgrades(t *testing.T) {
	s := start(t, "-drain", "5s")
	rt := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, QUICConfig: clientConf}
	defer rt.Close()
	client := &http.Client{Transport: rt, Timeout: 15 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	requests, rejected := 0, 0
	byPid := map[string]int{}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := client.Get("https://" + s.addr + "/")
				var h3err *http3.Error
				if errors.As(err, &h3err) && h3err.ErrorCode == http3.ErrCodeRequestRejected {
					// Sent as the server's GOAWAY was on its way: never
					// processed, and safe to retry (RFC 9114, 4.1.1), as
					// browsers do.
					mu.Lock()
					rejected++
					mu.Unlock()
					res, err = client.Get("https://" + s.addr + "/")
				}
				var body []byte
				if err == nil {
					body, err = io.ReadAll(res.Body)
					res.Body.Close()
					if err == nil && (res.StatusCode != 200 || !strings.HasPrefix(string(body), "pid=")) {
						err = fmt.Errorf("status %d, body %q", res.StatusCode, body)
					}
				}
				mu.Lock()
				requests++
				if err != nil {
					failures = append(failures, err)
				} else {
					byPid[string(body)]++
				}
				mu.Unlock()
			}
		})
	}
	for range 10 {
		s.upgrade(t)
	}
	// Let requests reach the last generation.
	deadline := time.Now().Add(10 * time.Second)
	last := "pid=" + strconv.Itoa(s.current())
	for {
		mu.Lock()
		n := byPid[last]
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
	if byPid[last] == 0 {
		t.Errorf("no request answered by the last generation; answers: %v", byPid)
	}
	t.Logf("%d requests, %d failed, %d rejected by a GOAWAY and retried, answered by %d generations", requests, len(failures), rejected, len(byPid))
	rt.Close()
	s.stop(t)
}
