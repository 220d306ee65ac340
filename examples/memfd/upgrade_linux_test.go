package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// server is a running examples/memfd process tree and a client of it.
type server struct {
	*exampletest.Server
	base string
	c    *http.Client
}

// startExample runs the program (the test binary as the example) on a
// port of its choosing with args, and waits until it serves.
func startExample(t *testing.T, args ...string) *server {
	t.Helper()
	s := program.Start(t, append([]string{"-addr", "127.0.0.1:0", "-log", "off"}, args...)...)
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &server{Server: s, base: "http://" + s.Listener(t).Addr, c: &http.Client{Transport: tr, Timeout: loadtest.DefaultTimeout}}
}

// do sends one request and returns the status and body.
func (e *server) do(method, path string) (int, string, error) {
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := e.c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (e *server) must(t *testing.T, method, path string) string {
	t.Helper()
	code, body, err := e.do(method, path)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s %s: %d %q %v", method, path, code, body, err)
	}
	return body
}

func (e *server) add(t *testing.T, want map[string]uint64, key string, delta uint64) {
	t.Helper()
	e.must(t, "POST", "/add?key="+url.QueryEscape(key)+"&delta="+fmt.Sprint(delta))
	want[key] += delta
}

// The counters survive 10 upgrades intact: after each, the new generation
// serves the same memfd (same inode) and the same entries (checksummed),
// while a client keeps counting through the upgrades and loses no
// acknowledged write.
func TestStateSurvivesUpgrades(t *testing.T) {
	t.Parallel()
	const upgrades = 10
	e := startExample(t, "-slots", "8192")
	want := map[string]uint64{}
	for i := range 500 {
		e.add(t, want, fmt.Sprintf("key-%03d", i), uint64(i*7+1))
	}
	first := e.must(t, "GET", "/")
	inode := strings.Fields(first)[2]

	// A client adds 1 to "hits" in a loop; a write refused during a
	// handover (503) is retried, as Retry-After says. The test pauses it
	// (mu) to compare the whole table with what was written.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked, refused, failed int
	var errs []string
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			code, body, err := e.do("POST", "/add?key=hits&delta=1")
			switch {
			case err == nil && code == http.StatusOK:
				acked++
			case err == nil && code == http.StatusServiceUnavailable:
				refused++
			default:
				failed++
				if len(errs) < 5 {
					errs = append(errs, fmt.Sprintf("%d %q %v", code, body, err))
				}
			}
			mu.Unlock()
		}
	})
	// check compares the table with what the test and the client wrote.
	check := func(when string) string {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if acked > 0 {
			want["hits"] = uint64(acked)
		}
		got := e.must(t, "GET", "/checksum")
		if exp := fmt.Sprintf("entries=%d sha256=%x\n", len(want), Checksum(want)); got != exp {
			t.Fatalf("%s: checksum %q, want %q (what was written; %d writes acknowledged)", when, got, exp, acked)
		}
		return strings.TrimSpace(got)
	}

	ctx := context.Background()
	for i := 1; i <= upgrades; i++ {
		for j := range 20 {
			e.add(t, want, fmt.Sprintf("gen%02d-%02d", i, j), uint64(i))
			e.add(t, want, fmt.Sprintf("key-%03d", (i*37+j)%500), 1)
		}
		check(fmt.Sprintf("before upgrade %d", i))
		up, err := e.Upgrade(ctx)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		root := e.must(t, "GET", "/")
		if !strings.Contains(root, fmt.Sprintf("pid=%d ", up.NewPID)) || strings.Fields(root)[2] != inode {
			t.Fatalf("after upgrade %d: %q, want pid %d and %s", i, root, up.NewPID, inode)
		}
		check(fmt.Sprintf("after upgrade %d", i))
	}
	close(stop)
	wg.Wait()
	final := check("at the end")
	if failed != 0 {
		t.Errorf("%d failed requests: %v", failed, errs)
	}
	if acked == 0 {
		t.Error("no counted write was acknowledged")
	}
	t.Logf("%d upgrades: %d entries intact (%s), same memfd (%s) in every generation; %d counted writes acknowledged, %d refused during handovers and retried, %d failed",
		upgrades, len(want), final, inode, acked, refused, failed)

	e.StopClean(t)
}
