package unixtransport_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	unixtransport "github.com/tableflip-go/tableflip/transport/unix"
)

// A service listens on a unix socket that only its group may use. Here
// tablefliptest stands in for tableflip.New, so the example runs anywhere;
// with a real Upgrader the next generation inherits the listener.
func ExampleListenConfig_Listen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.sock")

	upg := tablefliptest.New(nil)
	lc := unixtransport.ListenConfig{Mode: 0o660}
	ln, err := lc.Listen(context.Background(), upg, "unix", path)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over a unix socket\n")
	})}
	go srv.Serve(ln)
	upg.Ready()

	fi, _ := os.Stat(path)
	fmt.Println("mode:", fi.Mode().Perm())

	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	resp, err := client.Get("http://unix/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))
	client.CloseIdleConnections()

	srv.Close() // closing the listener leaves the file for the next generation
	_, err = os.Stat(path)
	fmt.Println("after close, file exists:", err == nil)
	upg.Stop() // the final stop removes it
	_, err = os.Stat(path)
	fmt.Println("after the final stop, file exists:", err == nil)
	// Output:
	// mode: -rw-rw----
	// hello over a unix socket
	// after close, file exists: true
	// after the final stop, file exists: false
}
