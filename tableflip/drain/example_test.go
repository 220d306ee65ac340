package drain_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/tableflip-go/tableflip/tableflip/drain"
)

// A client keeps its connection alive across requests. Once the drain has
// begun, its next request on that connection is still answered, with
// "Connection: close". The client then connects again, and during an upgrade
// that new connection goes to the next generation.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // in a service: the upgrader's shared listener
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	d := drain.New(srv, drain.Options{IdleGrace: 10 * time.Second})
	served := make(chan error, 1)
	go func() { served <- d.Serve(ln) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func() {
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s (Connection: close: %v)\n", body, resp.Close)
	}

	get()

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drained <- d.Drain(ctx)
	}()
	<-d.Draining()
	get() // on the connection kept alive from the first request

	fmt.Println("serve:", <-served)
	fmt.Println("drain:", <-drained)
	// Output:
	// hello (Connection: close: false)
	// hello (Connection: close: true)
	// serve: <nil>
	// drain: <nil>
}
