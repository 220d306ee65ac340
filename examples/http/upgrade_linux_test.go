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

// TestUpgradesUnderLoad is the zero-downtime proof: 8 concurrent clients
// through 20 consecutive upgrades see no failed request, whether they open
// a new connection per request or keep their connections alive. Every
// upgrade changes the serving pid, every generation serves from the same
// listening socket, and SIGTERM then exits 0.
func TestUpgradesUnderLoad(t *testing.T) {
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := program.Start(t, "-addr", "127.0.0.1:0")
			ln := srv.Listener(t)
			load, err := loadtest.Start(loadtest.Config{
				Target:  loadtest.Target{URL: "http://" + ln.Addr + "/"},
				Mode:    mode,
				Clients: 8,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer load.Stop()

			srv.UpgradeUnderLoad(t, ln, upgrades, load)
			srv.StopLoads(t, load)
			srv.StopClean(t)
		})
	}
}

// TestWrkThroughUpgrades runs wrk -c32 (Debian's wrk) as a keep-alive
// client through 20 upgrades: it must see no socket error. wrk counts every
// read, write or connect error on any of its connections and never retries,
// which makes it a fair outside judge. Two keep-alive Go clients run
// alongside to see each generation serve before the next upgrade.
func TestWrkThroughUpgrades(t *testing.T) {
	exampletest.NeedWrk(t)
	srv := program.Start(t, "-addr", "127.0.0.1:0")
	ln := srv.Listener(t)
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

	srv.UpgradeUnderLoad(t, ln, upgrades, probe)
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
	srv.CheckStats(t, probe.Stop())
	srv.StopClean(t)
}

// TestAnswer checks the stable contract of GET /: 200 and pid=<pid of the
// serving process>.
func TestAnswer(t *testing.T) {
	srv := program.Start(t, "-addr", "127.0.0.1:0")
	srv.CheckAnswer(t, "http://"+srv.Listener(t).Addr+"/")
	srv.StopClean(t)
}

// TestBadFlag checks that a bad -log value is refused with status 2.
func TestBadFlag(t *testing.T) {
	if out, code := program.Run(t, "-log", "verbose"); code != 2 {
		t.Fatalf("-log verbose: exit status %d, want 2; output:\n%s", code, out)
	}
}

// TestUpgradeFailureKeepsServing: when the next generation cannot start
// (here the binary on disk is replaced by one that exits 1), the upgrade
// fails, the server says so in its log, and the same pid keeps serving
// without a failed request. Once the binary is fixed, SIGHUP upgrades.
func TestUpgradeFailureKeepsServing(t *testing.T) {
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
