package tableflip

import (
	"context"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// reentrant is a transport whose activation matcher and Unclaimed call
// back into the Upgrader, as code that resolves names or unlinks paths
// may: none of it may run while the Upgrader holds its own state.
type reentrant struct{ u *Upgrader }

func (reentrant) Name() string { return "tftest-reentrant" }
func (reentrant) Open(ctx context.Context, fds Fds, address string) (io.Closer, error) {
	return nil, os.ErrInvalid
}
func (r reentrant) MatchActivated(key string, f *os.File, name string) bool {
	r.u.Forget("tftest-other", key) // any call into the Upgrader
	return true
}
func (r reentrant) Unclaimed(key string, meta []byte) { r.u.Forget("tftest-other", key) }

var reentrantT = &reentrant{}

func init() { MustRegister(reentrantT) }

// within fails the test if f does not return in time (a deadlock).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s deadlocked: foreign code ran while the Upgrader held its state", what)
	}
}

func TestForeignCodeRunsOffTheOwner(t *testing.T) {
	u, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	reentrantT.u = u

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	setActivation(u, newActivation(u.log, []*os.File{fileOf(t, ln.(syscall.Conn))}, []string{""}))
	within(t, "Inherit through an activation matcher", func() {
		f, _, err := u.Inherit("tftest-reentrant", "activated")
		if err != nil {
			t.Errorf("Inherit: %v", err)
			return
		}
		f.Close()
	})

	// An inherited file nobody claims: Ready calls its Unclaimed.
	addInherited(t, u, "tftest-reentrant", "left-over", ln.(syscall.Conn))
	within(t, "Ready with an Unclaimer", func() {
		if err := u.Ready(); err != nil {
			t.Errorf("Ready: %v", err)
		}
	})
}
