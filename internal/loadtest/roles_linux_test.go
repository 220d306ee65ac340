package loadtest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// runRole runs the test binary as one generation of a server that the
// tests drive from outside, like examples/http. Its environment:
//
//	LOADTEST_PIDFILE    the pid file
//	LOADTEST_ON_HUP     "upgrade" (default) or "exit3": exit with status 3
//	LOADTEST_TERM_CODE  exit status after SIGTERM (default 0)
//	LOADTEST_NOREADY    "1": never become ready (no pid file)
func runRole(role string) int {
	if role != "server" {
		fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
		return 2
	}
	if os.Getenv("LOADTEST_NOREADY") == "1" {
		time.Sleep(time.Hour) // killed by the test's cleanup
		return 1
	}
	upg, err := tableflip.New(tableflip.Options{PIDFile: os.Getenv("LOADTEST_PIDFILE")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer upg.Stop()
	ln, err := tcp.Listen(context.Background(), upg, "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pid := os.Getpid()
	srv := drain.New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d generation=%d\n", pid, upg.Generation())
	})}, drain.Options{})
	go srv.Serve(ln)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	if err := upg.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := 0
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGTERM {
				upg.Stop()
				code, _ = strconv.Atoi(os.Getenv("LOADTEST_TERM_CODE"))
				break wait
			}
			if os.Getenv("LOADTEST_ON_HUP") == "exit3" {
				os.Exit(3)
			}
			go upg.Upgrade(context.Background())
		case <-upg.Exit():
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Drain(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "bye pid=%d\n", pid)
	return code
}
