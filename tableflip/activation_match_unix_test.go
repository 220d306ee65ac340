//go:build unix

package tableflip

import (
	"fmt"
	"net"
	"testing"
)

// matchSocketAddress is how socket activation decides that a socket systemd
// passed is the one a "host:port" asks for.
func TestMatchSocketAddressByPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", ":0") // 0.0.0.0, any port
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	c := ln.(*net.TCPListener)
	for _, tc := range []struct {
		network, address string
		want             bool
	}{
		{"tcp", fmt.Sprintf(":%d", port), true},
		{"tcp", fmt.Sprintf("0.0.0.0:%d", port), true},
		{"tcp", fmt.Sprintf("127.0.0.1:%d", port), false},
		{"udp", fmt.Sprintf(":%d", port), false},
	} {
		if got := matchSocketAddress(tc.network, tc.address, c); got != tc.want {
			t.Errorf("%s %s: %v, want %v", tc.network, tc.address, got, tc.want)
		}
	}
}
