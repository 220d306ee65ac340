package main

import (
	"context"
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

// TestFailedUpgradeResumes deploys a broken binary: the upgrade fails after
// the old generation handed its worker's state over, the old generation
// keeps serving and its worker takes up the work again where it stopped. Then the good binary goes back and an upgrade goes
// through. No request fails, and the record shows no item done twice and
// no gap.
func TestFailedUpgradeResumes(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fx")
	copyFile(t, serverBin, bin)
	pidFile, record := filepath.Join(dir, "fx.pid"), filepath.Join(dir, "record")
	logw := newWatchLog(t)
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-pidfile", pidFile, "-record", record)
	cmd.Stderr = logw
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	srv, err := loadtest.StartServer(context.Background(), cmd, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	load, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + listenAddr(t, srv) + "/"}, Mode: loadtest.KeepAlive, Clients: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	ctx := context.Background()
	if err := load.WaitServed(ctx, srv.PID(), 5); err != nil {
		t.Fatal(err)
	}

	// The binary on disk now fails once it has the old generation's
	// sockets and state, as a deploy with a bad configuration would: its
	// PID file cannot be written, so its Ready fails.
	good := filepath.Join(dir, "fx.good")
	copyFile(t, serverBin, good)
	broken := filepath.Join(dir, "broken")
	script := "#!/bin/sh\nexec " + good + " \"$@\" -pidfile " + filepath.Join(dir, "missing", "fx.pid") + "\n"
	if err := os.WriteFile(broken, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	failed := logw.expect("upgrade failed, this generation keeps serving")
	resumed := logw.expect("upgrade failed, worker resumes")
	if err := syscall.Kill(srv.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if line := wait(t, failed); !strings.Contains(line, "write pid file") {
		t.Errorf("failure logged as %q, want the child's reason: its PID file", line)
	}
	wait(t, resumed)
	if err := load.WaitServed(ctx, srv.PID(), 5); err != nil {
		t.Fatal(err)
	}

	copyFile(t, serverBin, bin)
	up, err := srv.Upgrade(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !up.OldExit.Reaped || up.OldExit.Code != 0 {
		t.Errorf("old generation: %v, want exit status 0", up.OldExit)
	}
	if err := load.WaitServed(ctx, up.NewPID, 5); err != nil {
		t.Fatal(err)
	}
	if s := load.Stop(); s.Failures != 0 {
		t.Errorf("%v", s)
	}
	exit, err := srv.Stop(ctx)
	if err != nil || !exit.Reaped || exit.Code != 0 {
		t.Fatalf("SIGTERM: %v %v, want exit status 0", exit, err)
	}
	checkRecord(t, record, srv.Generations(), 1)
}

// copyFile writes src's content to a new file at dst, by rename, as a
// deploy would.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// watchLog writes a process's output to the test log and tells the
// expectations registered with expect when a line contains their text.
type watchLog struct {
	t     *testing.T
	mu    sync.Mutex
	waits map[string]chan string
}

func newWatchLog(t *testing.T) *watchLog { return &watchLog{t: t, waits: map[string]chan string{}} }

func (l *watchLog) Write(p []byte) (int, error) {
	l.t.Logf("server: %s", p)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(string(p), "\n") {
		for text, c := range l.waits {
			if strings.Contains(line, text) {
				c <- line
				delete(l.waits, text)
			}
		}
	}
	return len(p), nil
}

// expect returns a channel that gets the first line, from now on, that
// contains text.
func (l *watchLog) expect(text string) <-chan string {
	c := make(chan string, 1)
	l.mu.Lock()
	l.waits[text] = c
	l.mu.Unlock()
	return c
}

func wait(t *testing.T, c <-chan string) string {
	t.Helper()
	select {
	case line := <-c:
		return line
	case <-time.After(loadtest.DefaultTimeout):
		t.Fatal("timeout waiting for a log line")
		return ""
	}
}
