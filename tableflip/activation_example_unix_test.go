//go:build unix

package tableflip_test

import (
	"fmt"
	"net"
	"os"

	"github.com/tableflip-go/tableflip/tableflip"
)

// MatchSocketAddress is how socket activation decides that a socket systemd
// passed is the one a "host:port" or a socket path asks for.
func ExampleMatchSocketAddress() {
	ln, err := net.Listen("tcp4", ":0") // 0.0.0.0, any port
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	c := ln.(*net.TCPListener)

	fmt.Println(tableflip.MatchSocketAddress("tcp", fmt.Sprintf(":%d", port), c))
	fmt.Println(tableflip.MatchSocketAddress("tcp", fmt.Sprintf("0.0.0.0:%d", port), c))
	fmt.Println(tableflip.MatchSocketAddress("tcp", fmt.Sprintf("127.0.0.1:%d", port), c))
	fmt.Println(tableflip.MatchSocketAddress("udp", fmt.Sprintf(":%d", port), c))
	// Output:
	// true
	// true
	// false
	// false
}

// vsockTransport is a plugin transport whose keys are "cid:port". Socket
// activation offers it every activated file that no other Inherit claimed.
type vsockTransport struct{ tableflip.Transport }

func (vsockTransport) MatchActivated(key string, f *os.File, name string) bool {
	local, err := vsockLocalAddr(f) // getsockname, in the plugin's terms
	return err == nil && local == key
}

func vsockLocalAddr(f *os.File) (string, error) { return "", fmt.Errorf("not a vsock") }

// A transport whose keys are not the addresses of a network of package net
// tells socket activation which activated file is its own.
func ExampleActivationMatcher() {
	var _ tableflip.ActivationMatcher = vsockTransport{}
}
