package tcp_test

import (
	"strings"
	"testing"

	"github.com/tableflip-go/tableflip/internal/proctest"
)

func TestInheritAllNetworks(t *testing.T) {
	t.Parallel()
	p := proctest.Start(t, "tcpserver")
	first := proctest.Fields(p.Expect("READY "))
	second := proctest.Fields(p.Expect("READY "))
	if first["control"] != "3" {
		t.Errorf("the caller's Control ran %s times in the first generation, want 3", first["control"])
	}
	if second["control"] != "0" {
		t.Errorf("Control ran %s times on inherited sockets, want 0", second["control"])
	}
	for _, n := range []string{"tcp4", "tcp6", "tcp"} {
		if first[n] == "" || strings.HasSuffix(first[n], ":0") {
			t.Fatalf("%s: no port assigned: %q", n, first[n])
		}
		if first[n] != second[n] {
			t.Errorf("%s: %s in the first generation, %s in the second", n, first[n], second[n])
		}
	}
	if first["pid"] == second["pid"] {
		t.Error("no new process")
	}
}

func TestInheritedWrongKind(t *testing.T) {
	t.Parallel()
	p := proctest.Start(t, "tcpserver", "TFTEST_MODE=wrong-kind")
	line := p.Expect("WRONGKIND ")
	if !strings.Contains(line, "tcp: inherited tcp 127.0.0.1:9: not a TCP listener (ipv4 datagram socket)") {
		t.Fatalf("a UDP socket claimed as a TCP listener: %s", line)
	}
	p.Expect("READY ")
}
