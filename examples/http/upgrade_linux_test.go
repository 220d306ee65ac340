package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// TestUpgradesUnderLoad is the zero-downtime proof: 8 concurrent clients
// through 20 consecutive upgrades see no failed request, whether they open
// a new connection per request or keep their connections alive. Every
// upgrade changes the serving pid, every generation serves from the same
// listening socket, and SIGTERM then exits 0.
func TestUpgradesUnderLoad(t *testing.T) {
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := startServer(t, "-addr", "127.0.0.1:0")
			ln := listener(t, srv)
			load, err := loadtest.Start(loadtest.Config{
				Target:  loadtest.Target{URL: "http://" + ln.Addr + "/"},
				Mode:    mode,
				Clients: 8,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer load.Stop()

			upgradeUnderLoad(t, srv, ln, upgrades, load)
			stats := load.Stop()
			t.Log(stats)
			checkStats(t, stats, srv)
			stopServer(t, srv)
		})
	}
}

// TestWrkThroughUpgrades runs wrk -c32 (Debian's wrk) as a keep-alive
// client through 20 upgrades: it must see no socket error. wrk counts every
// read, write or connect error on any of its connections and never retries,
// which makes it a fair outside judge. Two keep-alive Go clients run
// alongside to see each generation serve before the next upgrade.
func TestWrkThroughUpgrades(t *testing.T) {
	if !loadtest.WrkAvailable() {
		if os.Getenv("TABLEFLIP_NO_WRK") == "1" {
			t.Skip("wrk not installed and TABLEFLIP_NO_WRK=1")
		}
		t.Fatal("wrk is not installed: apt-get install wrk (or set TABLEFLIP_NO_WRK=1 to skip this test explicitly)")
	}
	srv := startServer(t, "-addr", "127.0.0.1:0")
	ln := listener(t, srv)
	url := "http://" + ln.Addr + "/"
	wrk, err := loadtest.StartWrk(loadtest.WrkOptions{URL: url, Connections: 32, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer wrk.Stop()
	probe, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: url}, Mode: loadtest.KeepAlive, Clients: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Stop()

	upgradeUnderLoad(t, srv, ln, upgrades, probe)
	res, err := wrk.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.SocketErrors() != 0 || res.Non2xx != 0 {
		t.Errorf("wrk -c32 through %d upgrades: %v\n%s", upgrades, res, res.Output)
	}
	if res.Requests == 0 {
		t.Errorf("wrk made no request:\n%s", res.Output)
	}
	checkStats(t, probe.Stop(), srv)
	stopServer(t, srv)
}

// TestAnswer checks the stable contract of GET /: 200 and pid=<pid of the
// serving process>.
func TestAnswer(t *testing.T) {
	srv := startServer(t, "-addr", "127.0.0.1:0")
	ln := listener(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 512)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if pid, ok := loadtest.ParsePID(body[:n]); resp.StatusCode != 200 || !ok || pid != srv.PID() {
		t.Errorf("GET /: %s %q, want 200 and pid=%d", resp.Status, body[:n], srv.PID())
	}
	stopServer(t, srv)
}

// TestBadFlag checks that a bad -log value is refused with status 2.
func TestBadFlag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, serverBin, "-log", "verbose").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("-log verbose: %v, want exit status 2; output:\n%s", err, out)
	}
}

// TestUpgradeFailureKeepsServing: when the next generation cannot start
// (here the binary on disk is replaced by one that exits 1), the upgrade
// fails, the server says so in its log, and the same pid keeps serving
// without a failed request. Once the binary is fixed, SIGHUP upgrades.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "http")
	copyFile(t, serverBin, bin)
	pidFile := filepath.Join(dir, "http.pid")
	failed := make(chan struct{})
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-pidfile", pidFile)
	cmd.Stderr = &lineWatch{t: t, match: "upgrade failed, still serving", found: failed}
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	srv, err := loadtest.StartServer(context.Background(), cmd, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln := listener(t, srv)
	load, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + ln.Addr + "/"}, Mode: loadtest.KeepAlive, Clients: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	first := srv.PID()
	if err := load.WaitServed(context.Background(), first, 5); err != nil {
		t.Fatal(err)
	}

	// Deploy a broken binary by renaming it over the running one, as a
	// deploy does. (Moving the running binary aside instead would not
	// work: the next generation is started from the path of the running
	// image, which then is the moved file.)
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'config invalid' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-failed:
	case <-time.After(loadtest.DefaultTimeout):
		t.Fatal("no \"upgrade failed\" in the server's log")
	}
	before := load.Stats().ByPid[first]
	if err := load.WaitServed(context.Background(), first, before+5); err != nil {
		t.Fatalf("after the failed upgrade: %v", err)
	}
	if pid, err := loadtest.ReadPIDFile(pidFile); err != nil || pid != first {
		t.Errorf("pid file names %d (%v), want %d", pid, err, first)
	}

	// Deploy a good binary again: the next SIGHUP upgrades.
	copyFile(t, serverBin, bin+".new")
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	up, err := srv.Upgrade(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := load.WaitServed(context.Background(), up.NewPID, 5); err != nil {
		t.Fatal(err)
	}
	s := load.Stop()
	if s.Failures != 0 {
		t.Errorf("%v", s)
	}
	stopServer(t, srv)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// lineWatch logs a process's output to the test and closes found the
// first time the output holds match.
type lineWatch struct {
	t     *testing.T
	match string
	found chan struct{}
	mu    sync.Mutex
	buf   strings.Builder
	done  bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.t.Logf("server: %s", p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.buf.Write(p)
		if strings.Contains(w.buf.String(), w.match) {
			w.done = true
			close(w.found)
		}
	}
	return len(p), nil
}
