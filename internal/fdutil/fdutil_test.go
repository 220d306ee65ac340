package fdutil_test

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/tableflip-go/tableflip/internal/fdutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInspect(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, tc := range []struct {
		c    interface{ File() (*os.File, error) }
		want string
	}{
		{ln.(*net.TCPListener), "listening ipv4 stream socket"},
		{pc.(*net.UDPConn), "ipv4 datagram socket"},
	} {
		f, err := tc.c.File()
		if err != nil {
			t.Fatal(err)
		}
		info, err := fdutil.Inspect(f)
		f.Close()
		if err != nil || info.String() != tc.want {
			t.Errorf("%T: %q %v, want %q", tc.c, info, err, tc.want)
		}
	}
	listening, err := fdutil.Listening(ln.(*net.TCPListener))
	if err != nil || !listening {
		t.Errorf("Listening(listener) = %v, %v", listening, err)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	// The error names the failing call and wraps the errno, without a
	// verdict of its own that callers would repeat ("not a socket: not a
	// socket: ...").
	if _, err := fdutil.Inspect(r); !errors.Is(err, syscall.ENOTSOCK) || !strings.HasPrefix(err.Error(), "getsockopt: ") {
		t.Errorf("Inspect(pipe) = %v, want getsockopt: ENOTSOCK", err)
	}
}
