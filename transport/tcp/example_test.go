package tcp_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// A listener from tcp.Listen is inherited by the next generation under the
// address as asked, so ":0" keeps the port it got the first time.
func ExampleListen() {
	upg := tablefliptest.New(nil) // tableflip.New(tableflip.Options{}) in a real program
	defer upg.Stop()

	ln, err := tcp.Listen(context.Background(), upg, "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{}
	go srv.Serve(ln)
	defer srv.Close()

	fmt.Println(upg.Ready())
	// Output: <nil>
}
