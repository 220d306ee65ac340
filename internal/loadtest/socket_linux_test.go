package loadtest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

func TestListenersOfThisProcess(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	path := filepath.Join(t.TempDir(), "s.sock")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	// A connected socket is not a listener.
	c, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	lns, err := loadtest.Listeners(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]loadtest.Listener{}
	for _, l := range lns {
		found[l.Network+" "+l.Addr] = l
	}
	tcpL, ok1 := found["tcp "+tl.Addr().String()]
	unixL, ok2 := found["unix "+path]
	if !ok1 || !ok2 || len(lns) != 2 {
		t.Fatalf("Listeners = %v, want %s and %s only", lns, tl.Addr(), path)
	}
	for _, l := range []loadtest.Listener{tcpL, unixL} {
		inode, err := loadtest.ListenerInode(l.Network, l.Addr)
		if err != nil || inode != l.Inode {
			t.Errorf("ListenerInode(%s %s) = %d, %v; want %d", l.Network, l.Addr, inode, err, l.Inode)
		}
		if held, err := loadtest.HoldsSocket(os.Getpid(), l.Inode); err != nil || !held {
			t.Errorf("HoldsSocket(self, %d) = %v, %v", l.Inode, held, err)
		}
		if held, _ := loadtest.HoldsSocket(os.Getppid(), l.Inode); held {
			t.Errorf("our parent holds our socket %d", l.Inode)
		}
	}
	if _, err := loadtest.ListenerInode("tcp", "127.0.0.1:1"); err == nil {
		t.Errorf("ListenerInode found a listener on port 1")
	}
}

// TestListenerInodeTwoSockets: two sockets on one port (SO_REUSEPORT) are
// not "the same socket".
func TestListenerInodeTwoSockets(t *testing.T) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return serr
	}}
	a, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := lc.Listen(context.Background(), "tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = loadtest.ListenerInode("tcp", a.Addr().String())
	if !errors.Is(err, loadtest.ErrManyListeners) {
		t.Fatalf("err = %v, want 2 sockets", err)
	}
}

// TestListenerHeldBy: HeldBy holds for the socket and a process that has
// it, and says why otherwise.
func TestListenerHeldBy(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	l := loadtest.Listener{Network: "tcp", Addr: tl.Addr().String()}
	if l.Inode, err = loadtest.ListenerInode(l.Network, l.Addr); err != nil {
		t.Fatal(err)
	}
	if err := l.HeldBy(os.Getpid()); err != nil {
		t.Errorf("HeldBy(self): %v", err)
	}
	if err := l.HeldBy(os.Getppid()); !errors.Is(err, loadtest.ErrNotHeld) {
		t.Errorf("HeldBy(parent): %v, want it not held", err)
	}
	other := l
	other.Inode++
	if err := other.HeldBy(os.Getpid()); !errors.Is(err, loadtest.ErrOtherSocket) {
		t.Errorf("HeldBy with another inode: %v, want the inode mismatch", err)
	}
	tl.Close()
	if err := l.HeldBy(os.Getpid()); !errors.Is(err, loadtest.ErrNoListener) {
		t.Errorf("HeldBy after Close: %v, want no listener", err)
	}
}
