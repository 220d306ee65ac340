//go:build unix

package drain_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// Run is the life of a generation once it has its sockets: signals, Ready,
// serving, and the drain once the next generation is ready or SIGTERM came.
// Here the process sends itself SIGTERM, as `kill -TERM` would.
func ExampleRun() {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer upg.Stop()
	ln, err := tcp.Listen(context.Background(), upg, "tcp", "127.0.0.1:0") // inherited, or created
	if err != nil {
		upg.Fail(err)
		fmt.Println(err)
		return
	}
	srv := drain.New(&http.Server{ReadHeaderTimeout: 10 * time.Second}, drain.Options{})
	serve := func() error {
		// Called once Ready has returned nil, so the pid is public now.
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		return srv.Serve(ln)
	}
	err = drain.Run(upg, serve, srv.Drain, drain.RunOptions{})
	fmt.Println("drained:", err)
	// Output: drained: <nil>
}
