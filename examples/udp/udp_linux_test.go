package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// upgrades is how many consecutive upgrades the load test drives.
const upgrades = 20

// server is a running examples/udp and the ready lines its generations
// print.
type server struct {
	*loadtest.Server
	addr    string
	pidFile string
	lines   chan string
}

// startServer starts serverBin on a free port of 127.0.0.1 and waits until
// it is ready. Its log goes to the test's log.
func startServer(t *testing.T) *server {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "udp.pid")
	cmd := exec.Command(serverBin, "-addr", "127.0.0.1:0", "-pidfile", pidFile)
	cmd.Stderr = testLog{t}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	s := &server{pidFile: pidFile, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	srv, err := loadtest.StartServer(context.Background(), cmd, pidFile)
	if err != nil {
		pw.Close()
		t.Fatal(err)
	}
	s.Server = srv
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		pw.Close()
		for range s.lines {
		}
	})
	line := s.ready(t, srv.PID())
	s.addr = field(line, "addr")
	return s
}

// ready waits for the ready line of pid.
func (s *server) ready(t *testing.T, pid int) string {
	t.Helper()
	timeout := time.After(loadtest.DefaultTimeout)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("server output closed before pid %d was ready", pid)
			}
			if strings.HasPrefix(line, "ready ") && field(line, "pid") == strconv.Itoa(pid) {
				return line
			}
		case <-timeout:
			t.Fatalf("no ready line from pid %d", pid)
		}
	}
}

func field(line, name string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("server: %s", p)
	return len(p), nil
}

// load is clients that each send a datagram with a unique id, wait up to
// 10s for its answer, and send the next: no retry, so a datagram nobody
// answers is counted.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu         sync.Mutex
	sent       int64
	answered   int64
	unanswered []string
	bad        []string
	byPid      map[int]int64
	changed    chan struct{}
}

func startLoad(t *testing.T, addr string, clients int) *load {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &load{stop: make(chan struct{}), byPid: map[int]int64{}, changed: make(chan struct{})}
	for i := 0; i < clients; i++ {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			l.client(i, c)
		}()
	}
	return l
}

func (l *load) client(id int, c *net.UDPConn) {
	buf := make([]byte, 2048)
	for seq := 0; ; seq++ {
		select {
		case <-l.stop:
			return
		default:
		}
		req := fmt.Sprintf("req client=%d seq=%d", id, seq)
		l.mu.Lock()
		l.sent++
		l.mu.Unlock()
		if _, err := c.Write([]byte(req)); err != nil {
			l.fail(&l.unanswered, fmt.Sprintf("%s: send: %v", req, err))
			return
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			l.fail(&l.unanswered, fmt.Sprintf("%s: %v", req, err))
			return
		}
		pidField, rest, ok := bytes.Cut(buf[:n], []byte(" "))
		pid, perr := strconv.Atoi(strings.TrimPrefix(string(pidField), "pid="))
		if !ok || !bytes.HasPrefix(pidField, []byte("pid=")) || perr != nil || string(rest) != req {
			l.fail(&l.bad, fmt.Sprintf("%s: answer %q", req, buf[:n]))
			return
		}
		l.mu.Lock()
		l.answered++
		l.byPid[pid]++
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
}

func (l *load) fail(list *[]string, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	*list = append(*list, msg)
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitServed waits until pid has answered n datagrams.
func (l *load) waitServed(t *testing.T, pid int, n int64) {
	t.Helper()
	timeout := time.After(loadtest.DefaultTimeout)
	for {
		l.mu.Lock()
		got, ch, failed := l.byPid[pid], l.changed, len(l.unanswered)+len(l.bad)
		l.mu.Unlock()
		if got >= n {
			return
		}
		if failed > 0 {
			t.Fatalf("waiting for pid %d to answer: %v %v", pid, l.unanswered, l.bad)
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("pid %d answered %d of %d datagrams in %v", pid, got, n, loadtest.DefaultTimeout)
		}
	}
}

func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// TestUpgradesUnderLoad: 8 clients with no retry through 20 upgrades; every
// datagram is answered, by the generation that read it, with pid=<pid>
// and the datagram's own bytes.
func TestUpgradesUnderLoad(t *testing.T) {
	srv := startServer(t)
	l := startLoad(t, srv.addr, 8)
	defer l.finish()
	l.waitServed(t, srv.PID(), 20)
	for i := 1; i <= upgrades; i++ {
		up, err := srv.Upgrade(context.Background())
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			t.Errorf("upgrade %d: old generation: %v, want exit status 0", i, up.OldExit)
		}
		if line := srv.ready(t, up.NewPID); field(line, "addr") != srv.addr || field(line, "generation") != strconv.Itoa(i+1) {
			t.Fatalf("upgrade %d: %q, want addr=%s generation=%d", i, line, srv.addr, i+1)
		}
		l.waitServed(t, up.NewPID, 20)
		t.Logf("upgrade %2d: pid %d -> %d, ready in %v, old one gone after %v", i, up.OldPID, up.NewPID, up.Latency, up.Exited)
	}
	l.finish()

	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("%d datagrams sent, %d answered, %d unanswered, %d bad answers, by %d pids", l.sent, l.answered, len(l.unanswered), len(l.bad), len(l.byPid))
	if len(l.unanswered) != 0 || len(l.bad) != 0 || l.sent != l.answered {
		t.Errorf("%d sent, %d answered; unanswered: %v; bad: %v", l.sent, l.answered, l.unanswered, l.bad)
	}
	gens := srv.Generations()
	for _, pid := range gens {
		if l.byPid[pid] == 0 {
			t.Errorf("generation %d answered nothing", pid)
		}
	}
	if len(l.byPid) != len(gens) || len(gens) != upgrades+1 {
		t.Errorf("answers from pids %v; generations %v", l.byPid, gens)
	}
	stop(t, srv)
}

// TestAnswer is the stable contract: "pid=<pid> " and the datagram's own
// bytes, whatever they are.
func TestAnswer(t *testing.T) {
	srv := startServer(t)
	c, err := net.Dial("udp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, req := range [][]byte{[]byte("hello"), {0, 0xff, ' ', '\n', 'x'}, {}} {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(loadtest.DefaultTimeout))
		buf := make([]byte, 1024)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := append([]byte(fmt.Sprintf("pid=%d ", srv.PID())), req...); !bytes.Equal(buf[:n], want) {
			t.Errorf("answer %q, want %q", buf[:n], want)
		}
	}
	stop(t, srv)
}

// stop sends SIGTERM: status 0 and the pid file removed.
func stop(t *testing.T, srv *server) {
	t.Helper()
	exit, err := srv.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !exit.Reaped || exit.Code != 0 {
		t.Errorf("SIGTERM: %v, want exit status 0", exit)
	}
	if _, err := os.Stat(srv.pidFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after SIGTERM: %v, want it removed", err)
	}
}

// TestBadFlag: an unknown flag is refused with status 2.
func TestBadFlag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, serverBin, "-nosuchflag").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("-nosuchflag: %v, want exit status 2; output:\n%s", err, out)
	}
}
