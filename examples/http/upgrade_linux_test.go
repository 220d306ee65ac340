package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// TestUpgradesUnderLoad is the zero-downtime proof: through 20
// consecutive upgrades, three judges see no failed request: 8 Go clients
// that open a new connection per request, 8 that keep their connections
// alive (neither retries), and wrk -c32 (Debian's wrk), which counts every
// read, write or connect error on any of its keep-alive connections and
// never retries. Every upgrade changes the serving pid, every generation
// serves from the same listening socket and serves every Go load, and
// SIGTERM then exits 0.
func TestUpgradesUnderLoad(t *testing.T) {
	t.Parallel()
	exampletest.NeedWrk(t)
	srv := program.Start(t, "-addr", "127.0.0.1:0")
	ln := srv.Listener(t)
	url := "http://" + ln.Addr + "/"
	wrk, err := loadtest.StartWrk(loadtest.WrkOptions{URL: url, Connections: 32, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer wrk.Stop()
	loads := exampletest.StartLoads(t, loadtest.Target{URL: url}, 8)

	srv.UpgradeUnderLoad(t, ln, upgrades, loads...)
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
	srv.StopLoads(t, loads...)
	srv.StopClean(t)
}

// TestAnswer checks the stable contract of GET /: 200 and pid=<pid of the
// serving process>.
func TestAnswer(t *testing.T) {
	t.Parallel()
	srv := program.Start(t, "-addr", "127.0.0.1:0")
	srv.CheckAnswer(t, "http://"+srv.Listener(t).Addr+"/")
	srv.StopClean(t)
}

// TestBadFlag checks that a bad -log value is refused with status 2.
func TestBadFlag(t *testing.T) {
	t.Parallel()
	if out, code := program.Run(t, "-log", "verbose"); code != 2 {
		t.Fatalf("-log verbose: exit status %d, want 2; output:\n%s", code, out)
	}
}

// TestUpgradeFailureKeepsServing: when the next generation cannot start
// (here the binary on disk is replaced by one that exits 1), the upgrade
// fails, the server says so in its log, and the same pid keeps serving
// without a failed request. Once the binary is fixed, SIGHUP upgrades.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	// Not parallel: it writes an executable, which a process forked
	// meanwhile by another test could hold open (ETXTBSY at exec).
	dir := t.TempDir()
	bin := filepath.Join(dir, "http")
	srv := program.Deploy(t, bin).Start(t, "-addr", "127.0.0.1:0")
	ln := srv.Listener(t)
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
	from := srv.Stderr.Len()
	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	srv.Stderr.Wait(t, from, "upgrade failed, still serving")
	before := load.Stats().ByPid[first]
	if err := load.WaitServed(context.Background(), first, before+5); err != nil {
		t.Fatalf("after the failed upgrade: %v", err)
	}
	if pid, err := loadtest.ReadPIDFile(srv.PIDFile); err != nil || pid != first {
		t.Errorf("pid file names %d (%v), want %d", pid, err, first)
	}

	// Deploy a good binary again: the next SIGHUP upgrades.
	exampletest.CopyFile(t, program.Path, bin)
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
	srv.StopClean(t)
}

// TestUpgradeFailureReason: a next generation that cannot listen (here its
// -socket is in a directory that does not exist) tells the serving one
// why, and the serving one logs that reason and keeps serving.
func TestUpgradeFailureReason(t *testing.T) {
	// Not parallel: it writes an executable, which a process forked
	// meanwhile by another test could hold open (ETXTBSY at exec).
	dir := t.TempDir()
	bin := filepath.Join(dir, "http")
	srv := program.Deploy(t, bin).Start(t, "-addr", "127.0.0.1:0")
	first := srv.PID()

	good := filepath.Join(dir, "http.good")
	exampletest.CopyFile(t, program.Path, good)
	socket := filepath.Join(dir, "missing", "http.sock")
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nexec "+good+" \"$@\" -socket "+socket+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	from := srv.Stderr.Len()
	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, _ := srv.Stderr.Wait(t, from, "upgrade failed, still serving")
	if !strings.Contains(line, socket) || strings.Contains(line, "stopped before it was ready") {
		t.Errorf("failure logged as %q, want the child's own reason, about %s", line, socket)
	}
	srv.CheckAnswer(t, "http://"+srv.Listener(t).Addr+"/")
	srv.StopClean(t)
}
