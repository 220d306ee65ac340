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

// TestFailedUpgradeResumes deploys a broken binary: the upgrade fails after
// the old generation handed its worker's state over, the old generation
// keeps serving and its worker takes up the work again where it stopped.
// Then the good binary goes back and an upgrade goes through. No request
// fails, and the record shows no item done twice and no gap.
func TestFailedUpgradeResumes(t *testing.T) {
	// Not parallel: it writes an executable, which a process forked
	// meanwhile by another test could hold open (ETXTBSY at exec).
	dir := t.TempDir()
	bin := filepath.Join(dir, "fx")
	srv, record := startServer(t, program.Deploy(t, bin), "-addr", "127.0.0.1:0")
	load, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + srv.Listener(t).Addr + "/"}, Mode: loadtest.KeepAlive, Clients: 4})
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
	exampletest.CopyFile(t, program.Path, good)
	broken := filepath.Join(dir, "broken")
	script := "#!/bin/sh\nexec " + good + " \"$@\" -pidfile " + filepath.Join(dir, "missing", "fx.pid") + "\n"
	if err := os.WriteFile(broken, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	from := srv.Stderr.Len()
	if err := syscall.Kill(srv.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if line, _ := srv.Stderr.Wait(t, from, "upgrade failed, this generation keeps serving"); !strings.Contains(line, "write pid file") {
		t.Errorf("failure logged as %q, want the child's reason: its PID file", line)
	}
	srv.Stderr.Wait(t, from, "upgrade failed, worker resumes")
	if err := load.WaitServed(ctx, srv.PID(), 5); err != nil {
		t.Fatal(err)
	}

	exampletest.CopyFile(t, program.Path, bin)
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
	srv.StopClean(t)
	checkRecord(t, record, srv.Generations(), 1)
}
