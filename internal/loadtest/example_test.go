package loadtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// Eight keep-alive clients against a server; Stats says what they saw.
func ExampleStart() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "pid=4242 generation=1\n")
	}))
	defer srv.Close()

	load, err := loadtest.Start(loadtest.Config{
		Target:  loadtest.Target{URL: srv.URL + "/"},
		Mode:    loadtest.KeepAlive,
		Clients: 8,
	})
	if err != nil {
		panic(err)
	}
	// Wait for an event, not for time: pid 4242 has answered 100 requests.
	if err := load.WaitServed(context.Background(), 4242, 100); err != nil {
		panic(err)
	}
	stats := load.Stop()
	fmt.Println("failures:", stats.Failures)
	fmt.Println("serving pids:", stats.Pids)
	// Output:
	// failures: 0
	// serving pids: [4242]
}

func ExampleParseWrk() {
	r, err := loadtest.ParseWrk(`Running 10m test @ http://127.0.0.1:8080/
  2 threads and 32 connections
  127632 requests in 3.00s, 16.92MB read
  Socket errors: connect 0, read 640, write 0, timeout 0
Requests/sec:  42540.66
`)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Requests, r.SocketErrors(), r.Read)
	// Output: 127632 640 640
}

// A server binary upgraded under load, as the tests of examples/http do.
func ExampleStartServer() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	bin, err := loadtest.Build(ctx, dir, "github.com/tableflip-go/tableflip/examples/http")
	if err != nil {
		panic(err)
	}
	pidFile := filepath.Join(dir, "http.pid")
	srv, err := loadtest.StartServer(ctx, exec.Command(bin, "-addr", "127.0.0.1:0", "-pidfile", pidFile, "-log", "off"), pidFile)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	lns, err := loadtest.Listeners(srv.PID()) // the port the server got
	if err != nil {
		panic(err)
	}
	load, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + lns[0].Addr + "/"}})
	if err != nil {
		panic(err)
	}
	for range 3 {
		up, err := srv.Upgrade(ctx)
		if err != nil {
			panic(err)
		}
		if err := load.WaitServed(ctx, up.NewPID, 5); err != nil {
			panic(err)
		}
		fmt.Printf("pid %d -> %d in %v\n", up.OldPID, up.NewPID, up.Latency)
	}
	stats := load.Stop()
	exit, err := srv.Stop(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(stats, exit)
}
