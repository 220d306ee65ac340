package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// upgrades is how many consecutive upgrades the load test drives.
const upgrades = 20

// server is a running examples/udp and the address it serves on.
type server struct {
	*exampletest.Server
	addr string
}

// startServer starts the program on a free port of 127.0.0.1 and waits
// until it is ready.
func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{Server: program.Start(t, "-addr", "127.0.0.1:0")}
	s.addr = field(s.ready(t, s.PID()), "addr")
	return s
}

// ready waits for the line pid prints on stdout when it serves.
func (s *server) ready(t *testing.T, pid int) string {
	t.Helper()
	line, _ := s.Stdout.Wait(t, 0, "ready pid="+strconv.Itoa(pid)+" ")
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
	t.Parallel()
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
	t.Parallel()
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
	srv.StopClean(t)
	if _, err := os.Stat(srv.PIDFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pid file after SIGTERM: %v, want it removed", err)
	}
}

// TestBadFlag: an unknown flag is refused with status 2.
func TestBadFlag(t *testing.T) {
	t.Parallel()
	if out, code := program.Run(t, "-nosuchflag"); code != 2 {
		t.Fatalf("-nosuchflag: exit status %d, want 2; output:\n%s", code, out)
	}
}

// TestUpgradeFailureReason: a next generation that cannot listen (here its
// -addr is no address) tells the serving one why, and the serving one logs
// that reason and keeps answering.
func TestUpgradeFailureReason(t *testing.T) {
	// Not parallel: it writes an executable, which a process forked
	// meanwhile by another test could hold open (ETXTBSY at exec).
	dir := t.TempDir()
	bin := filepath.Join(dir, "udp")
	srv := &server{Server: program.Deploy(t, bin).Start(t, "-addr", "127.0.0.1:0")}
	srv.addr = field(srv.ready(t, srv.PID()), "addr")

	good := filepath.Join(dir, "udp.good")
	exampletest.CopyFile(t, program.Path, good)
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nexec "+good+" \"$@\" -addr 127.0.0.256:0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	from := srv.Stderr.Len()
	if err := syscall.Kill(srv.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, _ := srv.Stderr.Wait(t, from, "upgrade failed, still serving")
	if !strings.Contains(line, "127.0.0.256") || strings.Contains(line, "stopped before it was ready") {
		t.Errorf("failure logged as %q, want the child's own reason, about 127.0.0.256", line)
	}
	l := startLoad(t, srv.addr, 1)
	defer l.finish()
	l.waitServed(t, srv.PID(), 1)
	l.finish()
	stop(t, srv)
}
