package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// TestUpgradesUnderLoad is the zero-downtime proof for gRPC: grpc-go
// clients (unary ones that keep their connection, unary ones with a new
// connection per RPC, and server-streaming ones) through 20 consecutive
// upgrades see no failed RPC. Every upgrade changes the serving pid, the
// new generation holds the same listening socket, and every old
// generation ends its GracefulStop within the drain deadline, without
// being cut short, and exits 0. SIGTERM then exits 0 too.
func TestUpgradesUnderLoad(t *testing.T) {
	const drain = 20 * time.Second
	srv := program.Start(t, "-addr", "127.0.0.1:0", "-log", "json", "-drain", drain.String())
	ln := srv.Listener(t)
	const streamLen = 20 // 20 answers, 10ms apart: most upgrades find streams under way
	load := startLoad(t, ln.Addr, 4, 2, 4, streamLen)
	defer load.stop()
	all := []kind{unaryKeepAlive, unaryNewConn, streaming}

	load.waitServed(t, srv.PID(), 5, all...)
	logFrom := 0
	for i := 1; i <= upgrades; i++ {
		up, err := srv.Upgrade(context.Background())
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		if up.NewPID == up.OldPID || up.NewPID == 0 {
			t.Fatalf("upgrade %d: serving pid %d -> %d", i, up.OldPID, up.NewPID)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			t.Errorf("upgrade %d: old generation: %v, want exit status 0", i, up.OldExit)
		}
		if err := ln.HeldBy(up.NewPID); err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		var drained logLine
		drained, logFrom = waitLog(t, srv.Stderr, logFrom, "drained", up.OldPID)
		if drained.Forced == nil || *drained.Forced || drained.Duration == nil || *drained.Duration >= drain.Seconds() {
			t.Errorf("upgrade %d: old generation %d drained: %+v, want GracefulStop within %v", i, up.OldPID, drained, drain)
		}
		load.waitServed(t, up.NewPID, 3, all...)
		t.Logf("upgrade %2d: pid %d -> %d, ready in %v, old one drained in %.3fs, gone after %v",
			i, up.OldPID, up.NewPID, up.Latency, *drained.Duration, up.Exited)
	}

	ok, failures, errs, byPid := load.stop()
	t.Logf("%d RPCs answered, %d failed; by client kind and pid: %v", ok, failures, byPid)
	if failures != 0 {
		t.Errorf("%d of %d RPCs failed; first errors:\n%q", failures, ok+failures, errs)
	}
	gens := srv.Generations()
	if len(gens) != upgrades+1 {
		t.Errorf("%d generations, want %d", len(gens), upgrades+1)
	}
	for k, pids := range byPid {
		for _, pid := range gens {
			if pids[pid] == 0 {
				t.Errorf("%s: generation %d answered no RPC", k, pid)
			}
		}
		if len(pids) != len(gens) {
			t.Errorf("%s: answered by pids %v, want only the generations %v", k, pids, gens)
		}
	}
	last := srv.PID()
	srv.StopClean(t)
	if drained, _ := waitLog(t, srv.Stderr, logFrom, "drained", last); *drained.Forced {
		t.Errorf("SIGTERM: %+v, want a graceful stop", drained)
	}
}

// TestStopWaitsForStreams: SIGTERM lets a stream under way finish every
// answer it asked for (GracefulStop), then the process exits 0.
func TestStopWaitsForStreams(t *testing.T) {
	srv := program.Start(t, "-addr", "127.0.0.1:0", "-log", "json")
	cc := dial(t, srv.Listener(t).Addr)
	defer cc.Close()
	const n = 50 // half a second
	s, err := openStream(context.Background(), cc, n)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		pid, count, err := recvAll(s, n)
		if err == nil && pid != srv.PID() {
			err = errors.New("answered by another pid")
		}
		if err == nil && count != n {
			err = errors.New("short stream")
		}
		got <- err
	}()
	if _, err := get(context.Background(), cc, "before"); err != nil {
		t.Fatal(err)
	}
	srv.StopClean(t) // SIGTERM, exit status 0
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("stream under way at SIGTERM: %v", err)
		}
	case <-time.After(loadtest.DefaultTimeout):
		t.Fatal("stream did not end")
	}
}

// TestDrainDeadline: an old generation whose stream outlasts -drain is
// cut short by Stop at the deadline, says so in its log, and exits 0
// then, while the new generation serves.
func TestDrainDeadline(t *testing.T) {
	const drain = 300 * time.Millisecond
	srv := program.Start(t, "-addr", "127.0.0.1:0", "-log", "json", "-drain", drain.String())
	addr := srv.Listener(t).Addr
	cc := dial(t, addr)
	defer cc.Close()
	const n = 3000 // 30 seconds of answers: longer than any drain here
	s, err := openStream(context.Background(), cc, n)
	if err != nil {
		t.Fatal(err)
	}
	old := srv.PID()
	first := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		pid, _, err := recvAllNotify(s, n, first)
		if pid != old {
			err = errors.Join(err, fmt.Errorf("stream answered by pid %d, want %d", pid, old))
		}
		result <- err
	}()
	select {
	case <-first: // the stream is under way
	case err := <-result:
		t.Fatalf("stream: %v", err)
	}

	up, err := srv.Upgrade(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !up.OldExit.Reaped || up.OldExit.Code != 0 {
		t.Errorf("old generation: %v, want exit status 0", up.OldExit)
	}
	drained, _ := waitLog(t, srv.Stderr, 0, "drained", old)
	if drained.Forced == nil || !*drained.Forced || *drained.Duration < drain.Seconds() || *drained.Duration > 10*drain.Seconds() {
		t.Errorf("old generation's drain: %+v, want forced at about %v", drained, drain)
	}
	select {
	case err := <-result:
		if status.Code(err) != codes.Unavailable {
			t.Errorf("stream cut at the drain deadline: %v, want Unavailable", err)
		}
	case <-time.After(loadtest.DefaultTimeout):
		t.Fatal("the stream was not ended")
	}
	// A new RPC, even on the same client, is the new generation's.
	if pid, err := get(context.Background(), cc, "after"); err != nil || pid != up.NewPID {
		t.Errorf("Get after the upgrade: pid %d, %v; want pid %d", pid, err, up.NewPID)
	}
	srv.StopClean(t)
}

// TestUpgradeFailureKeepsServing: when the next generation cannot start
// (the binary on disk is replaced by one that exits 1, as a bad deploy
// does), the upgrade fails, the serving generation says so in its log and
// keeps answering on the same connection and on new ones. Once the binary
// is fixed, SIGHUP upgrades.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "grpc")
	srv := program.Deploy(t, bin).Start(t, "-addr", "127.0.0.1:0", "-log", "json")
	addr := srv.Listener(t).Addr
	cc := dial(t, addr)
	defer cc.Close()
	first := srv.PID()

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
	failed, _ := waitLog(t, srv.Stderr, from, "upgrade failed, still serving", first)
	if failed.Error == nil || !strings.Contains(*failed.Error, "exit status 1") || failed.Duration == nil || failed.Generation == nil {
		t.Errorf("failed upgrade logged as %+v, want its error, duration and generation", failed)
	}
	for _, c := range []*grpc.ClientConn{cc, dial(t, addr)} {
		if pid, err := get(context.Background(), c, "still"); err != nil || pid != first {
			t.Errorf("Get after the failed upgrade: pid %d, %v; want pid %d", pid, err, first)
		}
		if c != cc {
			c.Close()
		}
	}

	exampletest.CopyFile(t, program.Path, bin)
	up, err := srv.Upgrade(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if pid, err := get(context.Background(), cc, "fixed"); err != nil || pid != up.NewPID {
		t.Errorf("Get after the upgrade: pid %d, %v; want pid %d", pid, err, up.NewPID)
	}
	srv.StopClean(t)
}

// TestBadRequest: a Stream asking for too many answers gets
// InvalidArgument with a message that says the limit, and the server
// serves on, on the same connection.
func TestBadRequest(t *testing.T) {
	srv := program.Start(t, "-addr", "127.0.0.1:0", "-log", "json")
	cc := dial(t, srv.Listener(t).Addr)
	defer cc.Close()
	s, err := openStream(context.Background(), cc, maxStream+1)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := recvAll(s, maxStream+1)
	if st, _ := status.FromError(errors.Unwrap(err)); got != 0 || st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "at most 10000") {
		t.Errorf("Stream(%d): %d answers, %v; want InvalidArgument saying the limit", maxStream+1, got, err)
	}
	if pid, err := get(context.Background(), cc, "after"); err != nil || pid != srv.PID() {
		t.Errorf("Get after the bad request: pid %d, %v", pid, err)
	}
	srv.StopClean(t)
}
