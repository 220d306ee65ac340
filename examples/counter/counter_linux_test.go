package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// incLoad is clients that POST /inc back to back and count what was
// acknowledged: a 200 whose body holds the new value. A client never
// retries: a request that failed may or may not have counted, so the test
// wants none.
type incLoad struct {
	stopping atomic.Bool
	wg       sync.WaitGroup
	acked    atomic.Int64
	failed   atomic.Int64

	mu     sync.Mutex
	errs   []string
	byPid  map[int]int64
	change chan struct{}
}

func startIncLoad(url string, clients int, keepAlive bool) *incLoad {
	l := &incLoad{byPid: map[int]int64{}, change: make(chan struct{})}
	for i := range clients {
		tr := &http.Transport{DisableKeepAlives: !keepAlive}
		c := &http.Client{Transport: tr, Timeout: 40 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			// Each request runs to its end, even at stop: one cut
			// short could have counted without being acknowledged.
			for !l.stopping.Load() {
				pid, err := inc(c, url)
				l.record(i, pid, err)
			}
		}()
	}
	return l
}

func inc(c *http.Client, url string) (int, error) {
	resp, err := c.Post(url+"inc", "", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	f := fields(string(b))
	pid, perr := strconv.Atoi(f["pid"])
	if _, verr := strconv.ParseInt(f["value"], 10, 64); resp.StatusCode != http.StatusOK || perr != nil || verr != nil {
		return 0, fmt.Errorf("%s %q", resp.Status, b)
	}
	return pid, nil
}

func (l *incLoad) record(client, pid int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed.Add(1)
		if len(l.errs) < 10 {
			l.errs = append(l.errs, fmt.Sprintf("client %d: %v", client, err))
		}
		return
	}
	l.acked.Add(1)
	l.byPid[pid]++
	close(l.change)
	l.change = make(chan struct{})
}

// waitServed waits until pid has acknowledged n increments.
func (l *incLoad) waitServed(t *testing.T, pid int, n int64) {
	t.Helper()
	deadline := time.After(loadtest.DefaultTimeout)
	for {
		l.mu.Lock()
		got, ch := l.byPid[pid], l.change
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("pid %d acknowledged %d increments, want %d; errors: %v", pid, got, n, l.errs)
		}
	}
}

func (l *incLoad) stop() {
	l.stopping.Store(true)
	l.wg.Wait()
}

func fields(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

func get(t *testing.T, url string) map[string]string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: loadtest.DefaultTimeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %q", url, resp.Status, b)
	}
	return fields(string(b))
}

// TestNoIncrementLostThrough20Upgrades is the state handoff's proof: 8
// clients send increments, half over keep-alive connections and half with
// a new connection each, through 20 upgrades; each generation serves
// increments before the next upgrade. No request fails, and the final
// value is exactly the number of increments acknowledged to the clients:
// none lost, none counted twice.
func TestNoIncrementLostThrough20Upgrades(t *testing.T) {
	srv := program.Start(t, "-addr", "127.0.0.1:0")
	url := "http://" + srv.Listener(t).Addr + "/"
	loads := []*incLoad{startIncLoad(url, 4, true), startIncLoad(url, 4, false)}
	defer func() {
		for _, l := range loads {
			l.stop()
		}
	}()
	waitServed := func(pid int) {
		for _, l := range loads {
			l.waitServed(t, pid, 20)
		}
	}
	waitServed(srv.PID())
	ctx := context.Background()
	for i := 1; i <= 20; i++ {
		up, err := srv.Upgrade(ctx)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			t.Errorf("upgrade %d: old generation: %v, want exit status 0", i, up.OldExit)
		}
		waitServed(up.NewPID)
		t.Logf("upgrade %2d: pid %d -> %d, ready in %v, old one gone after %v", i, up.OldPID, up.NewPID, up.Latency, up.Exited)
	}
	var acked, failed int64
	for _, l := range loads {
		l.stop()
		acked += l.acked.Load()
		failed += l.failed.Load()
		if len(l.errs) > 0 {
			t.Errorf("failures: %v", l.errs)
		}
	}
	got := get(t, url)
	t.Logf("%d increments acknowledged, %d failed, final value %s (pid %s)", acked, failed, got["value"], got["pid"])
	if failed != 0 {
		t.Errorf("%d increments failed", failed)
	}
	if got["value"] != strconv.FormatInt(acked, 10) {
		t.Errorf("final value %s, want %d: the number of increments acknowledged", got["value"], acked)
	}
	srv.StopClean(t)
}

// TestNoIncrementLostWhenUpgradesFail: next generations that die after the
// stream to them was opened (one exits at once, one fails at Ready after it
// has read the snapshot, one is SIGKILLed just after it has read it) leave the old generation counting on, and the
// final value is still exactly what was acknowledged. The good binary then
// upgrades.
func TestNoIncrementLostWhenUpgradesFail(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "counter")
	good := filepath.Join(dir, "counter.good")
	exampletest.CopyFile(t, program.Path, good)
	srv := program.Deploy(t, bin).Start(t, "-addr", "127.0.0.1:0")
	url := "http://" + srv.Listener(t).Addr + "/"
	loads := []*incLoad{startIncLoad(url, 2, true), startIncLoad(url, 2, false)}
	defer func() {
		for _, l := range loads {
			l.stop()
		}
	}()
	served := func(pid int) {
		for _, l := range loads {
			l.mu.Lock()
			n := l.byPid[pid]
			l.mu.Unlock()
			l.waitServed(t, pid, n+20)
		}
	}
	served(srv.PID())
	for _, tc := range []struct {
		script string
		kill   bool
	}{
		{"exit 1", false},
		// Reads the snapshot and the changes, listens, and fails at
		// Ready (its pid file cannot be written): it never commits.
		{`exec "$0.good" "$@" -pidfile /nonexistent/counter.pid`, false},
		// The same, SIGKILLed as soon as it has read the handoff.
		{`exec "$0.good" "$@" -pidfile /nonexistent/counter.pid`, true},
	} {
		deploy(t, bin, tc.script)
		from := srv.Stderr.Len()
		if err := syscall.Kill(srv.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if tc.kill {
			line, _ := srv.Stderr.Wait(t, from, "inherited from parent")
			if child, _ := strconv.Atoi(fields(strings.NewReplacer(`"`, "", ":", "=", ",", " ").Replace(line))["pid"]); child > 0 {
				syscall.Kill(child, syscall.SIGKILL) // it may have failed already
			}
		}
		srv.Stderr.Wait(t, from, "upgrade failed")
		served(srv.PID())
	}
	exampletest.CopyFile(t, good, bin)
	up, err := srv.Upgrade(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	served(up.NewPID)
	var acked, failed int64
	for _, l := range loads {
		l.stop()
		acked += l.acked.Load()
		failed += l.failed.Load()
	}
	got := get(t, url)
	t.Logf("%d increments acknowledged, %d failed, final value %s", acked, failed, got["value"])
	if failed != 0 || got["value"] != strconv.FormatInt(acked, 10) {
		t.Errorf("final value %s, %d failed; want %d", got["value"], failed, acked)
	}
	srv.StopClean(t)
}

func deploy(t *testing.T, bin, script string) {
	t.Helper()
	if err := os.WriteFile(bin+".new", []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
}
