package loadtest

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"testing"
)

// TestDiagMatchesProc: sock_diag and /proc/net/tcp{,6} list the same
// listening sockets.
func TestDiagMatchesProc(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v", addr, err) // no IPv6 here
			continue
		}
		defer ln.Close()
	}
	collect := func(scan func(func(net.IP, uint16, uint64)) error) []Listener {
		var out []Listener
		err := scan(func(ip net.IP, port uint16, inode uint64) {
			out = append(out, Listener{Network: "tcp", Addr: net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), Inode: inode})
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(out, func(a, b Listener) int { return cmp.Compare(a.Inode, b.Inode) })
		return out
	}
	diag, proc := collect(diagTCPListeners), collect(procTCPListeners)
	if !slices.Equal(diag, proc) || len(diag) < 1 {
		t.Fatalf("sock_diag: %v\n/proc: %v", diag, proc)
	}
}
