package tableflip_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// A generation's whole life: claim or create its listener, become ready,
// upgrade on SIGHUP, and exit when a successor is ready.
func Example() {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		panic(err)
	}
	defer upg.Stop()

	sighup := make(chan os.Signal, 1)
	signal.Notify(sighup, syscall.SIGHUP)
	defer signal.Stop(sighup)
	go func() {
		for {
			select {
			case <-sighup:
				upg.Upgrade(context.Background())
			case <-upg.Exit():
				return
			}
		}
	}()

	ln, err := tcp.Listen(context.Background(), upg, "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	})}
	go srv.Serve(ln)

	if err := upg.Ready(); err != nil {
		panic(err)
	}
	fmt.Println("generation", upg.Generation(), "ready")

	// This example stops at once; a service waits for <-upg.Exit() here.
	upg.Stop()
	<-upg.Exit()
	srv.Shutdown(context.Background())
	fmt.Println("stopped")
	// Output:
	// generation 1 ready
	// stopped
}

// The old generation writes its state at upgrade time; the new one reads it
// before Ready.
func ExampleOptions_saveState() {
	upg, err := tableflip.New(tableflip.Options{
		SaveState: func(ctx context.Context, w io.Writer) error {
			_, err := io.WriteString(w, `{"sessions": 42}`)
			return err
		},
	})
	if err != nil {
		panic(err)
	}
	defer upg.Stop()
	state, err := io.ReadAll(upg.LoadState()) // empty in the first generation
	if err != nil {
		panic(err)
	}
	fmt.Printf("inherited %d bytes of state\n", len(state))
	// Output: inherited 0 bytes of state
}
