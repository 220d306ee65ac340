package loadtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

func TestParsePID(t *testing.T) {
	for _, tc := range []struct {
		body string
		pid  int
		ok   bool
	}{
		{"pid=123 generation=4\n", 123, true},
		{"pid=7", 7, true},
		{"hello pid=42 ", 42, true},
		{"line\npid=9\n", 9, true},
		{"ppid=5 pid=6", 6, true},
		{"ppid=5", 0, false},
		{"pid=", 0, false},
		{"pid=0", 0, false},
		{"pid=x pid=3", 3, true},
		{"", 0, false},
	} {
		pid, ok := loadtest.ParsePID([]byte(tc.body))
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("ParsePID(%q) = %d, %v; want %d, %v", tc.body, pid, ok, tc.pid, tc.ok)
		}
	}
}

// pidServer is an HTTP server on real sockets that answers like a server
// generation with pid 4242, and counts the connections it accepted.
func pidServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pid=4242 generation=1\n")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	return srv, &conns
}

// runLoad runs a load with cfg until pid 4242 has answered n requests,
// and returns what its clients saw.
func runLoad(t *testing.T, cfg loadtest.Config, n int64) loadtest.Stats {
	t.Helper()
	load, err := loadtest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	if err := load.WaitServed(context.Background(), 4242, n); err != nil {
		t.Fatal(err)
	}
	s := load.Stop()
	t.Log(s)
	return s
}

// TestLoadModes checks that each mode does what it says: a new connection
// per request, or one kept-alive connection per client.
func TestLoadModes(t *testing.T) {
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		t.Run(mode.String(), func(t *testing.T) {
			srv, conns := pidServer(t)
			srv.Start()
			defer srv.Close()
			s := runLoad(t, loadtest.Config{Target: loadtest.Target{URL: srv.URL}, Mode: mode, Clients: 4}, 200)
			if s.Failures != 0 || s.Requests < 200 || s.ByPid[4242] != s.Requests || len(s.Pids) != 1 || s.Mode != mode {
				t.Fatalf("stats %+v", s)
			}
			switch n := conns.Load(); {
			case mode == loadtest.KeepAlive && n != 4:
				t.Errorf("%d keep-alive clients opened %d connections for %d requests, want 4", 4, n, s.Requests)
			case mode == loadtest.NewConnection && n < s.Requests:
				t.Errorf("%d connections for %d requests, want one per request", n, s.Requests)
			}
		})
	}
}

// TestLoadCountsFailures: wrong statuses, bodies without a pid, and
// connections closed without an answer are all failures, with messages.
func TestLoadCountsFailures(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			fmt.Fprint(w, "pid=4242\n")
		case 1:
			http.Error(w, "pid=4242 but failing", http.StatusServiceUnavailable)
		case 2:
			fmt.Fprint(w, "no pid here\n")
		case 3:
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close() // no answer at all
			}
		}
	}))
	defer srv.Close()
	// One client: its requests meet the four answers in turn.
	s := runLoad(t, loadtest.Config{Target: loadtest.Target{URL: srv.URL}, Mode: loadtest.KeepAlive, Clients: 1, MaxErrors: 3}, 20)
	if s.Failures < 3*s.Requests-3 || s.Failures > 3*s.Requests+3 {
		t.Errorf("%d failures for %d successes, want 3 per success", s.Failures, s.Requests)
	}
	if len(s.Errors) != 3 {
		t.Fatalf("%d messages, want MaxErrors=3", len(s.Errors))
	}
	for i, want := range []string{"status 503", "no pid=N in body", "EOF"} {
		if !strings.Contains(s.Errors[i], want) || !strings.HasPrefix(s.Errors[i], "client 0: ") {
			t.Errorf("message %d = %q, want it to start with client 0 and hold %q", i, s.Errors[i], want)
		}
	}
}

func TestLoadUnixSocket(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix sockets")
	}
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := pidServer(t)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	if s := runLoad(t, loadtest.Config{Target: loadtest.Target{URL: "http://unix/", UnixSocket: path}, Mode: loadtest.NewConnection, Clients: 2}, 20); s.Failures != 0 {
		t.Fatal(s)
	}
}

func TestLoadTLS(t *testing.T) {
	srv, _ := pidServer(t)
	srv.StartTLS()
	defer srv.Close()
	tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig
	if s := runLoad(t, loadtest.Config{Target: loadtest.Target{URL: srv.URL, TLS: tlsConfig}, Mode: loadtest.KeepAlive, Clients: 2}, 20); s.Failures != 0 {
		t.Fatal(s)
	}

	// Without the server's certificate, every request fails.
	load, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: srv.URL}, Clients: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := load.Wait(context.Background(), func(s *loadtest.Stats) bool { return s.Failures > 0 }); err != nil {
		t.Fatal(err)
	}
	if s := load.Stop(); s.Requests != 0 || s.Failures == 0 || !strings.Contains(s.Errors[0], "certificate") {
		t.Fatalf("untrusted certificate: %v", s)
	}
}

func TestWaitServedDeadline(t *testing.T) {
	srv, _ := pidServer(t)
	srv.Start()
	defer srv.Close()
	load, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: srv.URL}, Clients: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = load.WaitServed(ctx, 1, 1) // pid 1 never answers
	if !errors.Is(err, loadtest.ErrNotServed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestStartBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x/", "://", "localhost:80"} {
		if _, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: u}}); err == nil {
			t.Errorf("Start(%q) succeeded", u)
		}
	}
}
