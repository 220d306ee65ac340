package loadtest_test

import (
	"net"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// Outputs of Debian's wrk 4.1.0.
const (
	wrkClean = `Running 10m test @ http://127.0.0.1:8080/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms    1.52ms  30.13ms   90.21%
    Req/Sec    18.95k     2.27k   23.45k    72.00%
  188563 requests in 5.01s, 25.18MB read
Requests/sec:  37637.13
Transfer/sec:      5.03MB
`
	wrkErrors = `Running 10m test @ http://127.0.0.1:8080/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   681.00us    1.02ms  22.10ms   93.88%
    Req/Sec    21.37k     3.95k   27.12k    66.67%
  127632 requests in 3.00s, 16.92MB read
  Socket errors: connect 2, read 640, write 17, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:  42540.66
Transfer/sec:      5.64MB
`
)

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  string
		want loadtest.WrkResult
		err  bool
	}{
		{"clean", wrkClean, loadtest.WrkResult{Requests: 188563}, false},
		{"errors", wrkErrors, loadtest.WrkResult{Requests: 127632, Connect: 2, Read: 640, Write: 17, Timeout: 3, Non2xx: 12}, false},
		{"refused", "unable to connect to 127.0.0.1:1 Connection refused\n", loadtest.WrkResult{}, true},
		{"empty", "", loadtest.WrkResult{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadtest.ParseWrk(tc.out)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if got.Output != tc.out {
				t.Errorf("Output not kept")
			}
			got.Output = ""
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	r, _ := loadtest.ParseWrk(wrkErrors)
	if r.SocketErrors() != 662 {
		t.Errorf("SocketErrors = %d, want 662", r.SocketErrors())
	}
}

// TestWrk runs wrk against a healthy server and against one that drops
// every connection, to see both verdicts.
func TestWrk(t *testing.T) {
	exampletest.NeedWrk(t)
	srv, _ := pidServer(t)
	srv.Start()
	defer srv.Close()
	w, err := loadtest.StartWrk(loadtest.WrkOptions{URL: srv.URL + "/", Connections: 4, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Stop as soon as a probe sees the server serve under wrk's load.
	probe, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: srv.URL}, Clients: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.WaitServed(t.Context(), 4242, 10); err != nil {
		t.Fatal(err)
	}
	probe.Stop()
	r, err := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.SocketErrors() != 0 || r.Non2xx != 0 {
		t.Errorf("healthy server: %v", r)
	}

	// A server that accepts and closes at once: every request is a read
	// error for wrk.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done, tenth := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			if n == 10 {
				close(tenth)
			}
		}
	}()
	defer func() { ln.Close(); <-done }()
	w, err = loadtest.StartWrk(loadtest.WrkOptions{URL: "http://" + ln.Addr().String() + "/", Connections: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	// wrk reconnects after each error: with 2 connections, the tenth
	// accept means it has counted at least 8 errors.
	select {
	case <-tenth:
	case <-time.After(loadtest.DefaultTimeout):
		t.Fatal("wrk did not connect 10 times")
	}
	r, err = w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Requests != 0 || r.SocketErrors() < 8 {
		t.Errorf("a server that drops every connection: %v, want 0 requests and at least 8 socket errors", r)
	}
}
