package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
	"github.com/tableflip-go/tableflip/tableflip/drain"
)

// TestSlowClientsAreNotCut: clients that have sent part of a request when
// the drain begins are not idle. 30 clients, half on a connection that
// has already carried a request (idle between requests) and half on a
// new one, send a request's first header lines, and the rest only once
// the drain has been going for longer than its idle grace. Every one of
// them gets its answer from the old generation, which exits 0 after them,
// and its log counts them.
func TestSlowClientsAreNotCut(t *testing.T) {
	t.Parallel()
	const clients = 30
	srv := program.Start(t, "-addr", "127.0.0.1:0", "-log", "json")
	addr := srv.Listener(t).Addr
	old := srv.PID()

	type slowClient struct {
		c  net.Conn
		br *bufio.Reader
	}
	slow := make([]slowClient, clients)
	for i := range slow {
		c, err := net.DialTimeout("tcp", addr, loadtest.DefaultTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(loadtest.DefaultTimeout))
		slow[i] = slowClient{c, bufio.NewReader(c)}
		if i%2 == 0 {
			// Idle between requests: a first request, answered by
			// the old generation.
			get(t, slow[i].c, slow[i].br, old, "GET / HTTP/1.1\r\nHost: slow\r\n\r\n", false)
		}
	}
	// For the new connections: one more request on a connection of its
	// own, so that the old generation has accepted every one before them
	// (the socket's queue is first in, first out).
	srv.CheckAnswer(t, "http://"+addr+"/")
	for _, s := range slow {
		if _, err := io.WriteString(s.c, "GET / HTTP/1.1\r\nHost: slow\r\n"); err != nil {
			t.Fatal(err)
		}
	}

	from := srv.Stderr.Len()
	type result struct {
		up  loadtest.Upgrade
		err error
	}
	upgraded := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		up, err := srv.Upgrade(context.Background()) // returns once the old generation has exited
		upgraded <- result{up, err}
	}()
	// srv is not for concurrent use: its cleanup waits for Upgrade.
	t.Cleanup(func() { <-done })
	_, next := srv.Stderr.Wait(t, from, `"drain: started"`)
	// Past the idle grace (the feature under test is what happens once it
	// has passed, so this waits for time itself): before the drain
	// waited for them, it closed every one of these connections here.
	time.Sleep(drain.DefaultIdleGrace + time.Second)
	for _, s := range slow {
		if _, err := io.WriteString(s.c, "X-Slow: yes\r\n\r\n"); err != nil {
			t.Fatalf("finishing the request: %v", err)
		}
	}
	for _, s := range slow {
		get(t, s.c, s.br, old, "", true)
	}
	r := <-upgraded
	if r.err != nil {
		t.Fatal(r.err)
	}
	if up := r.up; !up.OldExit.Reaped || up.OldExit.Code != 0 {
		t.Errorf("old generation: %v, want exit status 0", up.OldExit)
	}
	line, _ := srv.Stderr.Wait(t, next, `"drain: done"`)
	if !strings.Contains(line, `"waited_for_partial_requests":30`) || !strings.Contains(line, `"closed_new_silent_past_grace":0`) {
		t.Errorf("drain logged %s, want 30 partial requests waited for and no connection closed", line)
	}
	srv.StopClean(t)
}

// get sends req on c (if not empty) and checks the answer: 200 from pid,
// with "Connection: close" if wantClose.
func get(t *testing.T, c net.Conn, br *bufio.Reader, pid int, req string, wantClose bool) {
	t.Helper()
	if req != "" {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := loadtest.ParsePID(body); resp.StatusCode != http.StatusOK || !ok || got != pid || resp.Close != wantClose {
		t.Errorf("answer %s %q (Connection: close %v), want 200 from pid=%d (Connection: close %v)", resp.Status, body, resp.Close, pid, wantClose)
	}
}

// TestSIGHUPsDuringAnUpgradeAreCoalesced: SIGHUPs that arrive while an
// upgrade runs are part of it: each is logged as coalesced, none as a
// failed upgrade (before drain.Run, each logged "upgrade failed, still
// serving: ... upgrade in progress"), and one new generation serves. The
// next generation is held at its start, by a script deployed over the
// binary that waits on a FIFO, so that the upgrade is surely running.
func TestSIGHUPsDuringAnUpgradeAreCoalesced(t *testing.T) {
	// Not parallel: it writes an executable, which a process forked
	// meanwhile by another test could hold open (ETXTBSY at exec).
	dir := t.TempDir()
	bin := filepath.Join(dir, "http")
	srv := program.Deploy(t, bin).Start(t, "-addr", "127.0.0.1:0")
	old := srv.PID()
	good := filepath.Join(dir, "http.good")
	exampletest.CopyFile(t, program.Path, good)
	fifo := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(dir, "held")
	if err := os.WriteFile(held, []byte("#!/bin/sh\nread x < "+fifo+"\nexec "+good+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(held, bin); err != nil {
		t.Fatal(err)
	}

	from := srv.Stderr.Len()
	type result struct {
		up  loadtest.Upgrade
		err error
	}
	upgraded := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		up, err := srv.Upgrade(context.Background()) // the first SIGHUP
		upgraded <- result{up, err}
	}()
	t.Cleanup(func() { <-done }) // srv is not for concurrent use
	var release sync.Once
	releaseChild := func() {
		release.Do(func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			f.WriteString("go\n")
			f.Close()
		})
	}
	t.Cleanup(releaseChild) // before waiting for Upgrade

	_, next := srv.Stderr.Wait(t, from, "upgrade started")
	const extra = 3
	for range extra {
		if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		_, next = srv.Stderr.Wait(t, next, "upgrade in progress, signal coalesced into it")
	}
	releaseChild()
	r := <-upgraded
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.up.OldExit.Reaped || r.up.OldExit.Code != 0 {
		t.Errorf("old generation: %v, want exit status 0", r.up.OldExit)
	}
	if n := len(srv.Generations()); n != 2 {
		t.Errorf("%d generations after %d SIGHUPs during one upgrade, want 2", n, 1+extra)
	}
	if log := srv.Stderr.String(); strings.Contains(log, "upgrade failed") {
		t.Errorf("a coalesced SIGHUP was logged as a failed upgrade:\n%s", log)
	}
	srv.CheckAnswer(t, "http://"+srv.Listener(t).Addr+"/")
	srv.StopClean(t)
}
