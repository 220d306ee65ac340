package tableflip

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
)

// handoffInProcess hands what parent passes to a new child Upgrader in this
// process, over a real socketpair, with the parent's own send: an
// in-process seam for the child's side (the child is not registered as the
// process's Upgrader, so both may run).
func handoffInProcess(t *testing.T, parent *Upgrader) *Upgrader {
	t.Helper()
	pc, childEnd, err := socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := net.FileConn(childEnd)
	childEnd.Close()
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		// As handoff does: send first, the child's hello is read after.
		if err := parent.send(context.Background(), pc, &Handoff{generation: 2}, func() bool { return false }); err != nil {
			sent <- err
			return
		}
		_, err := pc.readFrame() // the child's hello
		sent <- err
	}()
	child := newUpgrader(Options{})
	if err := child.readHandoff(newHandoffConn(c.(*net.UnixConn))); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	child.start()
	t.Cleanup(child.Stop)
	return child
}

func udpConn(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

func TestInheritedListsUnclaimedKeys(t *testing.T) {
	parent := newUpgrader(Options{})
	parent.start()
	defer parent.Stop()
	for _, k := range [][2]string{{"tftest-steer", "b"}, {"tftest-steer", "a"}, {"other", "x"}} {
		if err := parent.Pass(k[0], k[1], udpConn(t), nil); err != nil {
			t.Fatal(err)
		}
	}
	child := handoffInProcess(t, parent)
	if got := child.Inherited("tftest-steer"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Inherited = %q, want [a b], sorted", got)
	}
	f, _, err := child.Inherit("tftest-steer", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := child.Inherited("tftest-steer"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after claiming a: Inherited = %q, want [b]", got)
	}
	if got := child.Inherited("none"); got != nil {
		t.Fatalf("Inherited of an unknown transport = %q", got)
	}
}

// claimAsPacket claims the inherited "key" and returns it as a packet
// conn, whatever the caller wanted: Listen must put the claim back.
type claimAsPacket struct{}

func (claimAsPacket) Name() string { return "tftest-claim" }
func (claimAsPacket) Open(ctx context.Context, fds Fds, address string) (io.Closer, error) {
	f, _, err := fds.Inherit("tftest-claim", "key")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return net.FilePacketConn(f)
}

func init() { MustRegister(claimAsPacket{}) }

func TestWrongKindPutsTheClaimBack(t *testing.T) {
	parent := newUpgrader(Options{})
	parent.start()
	defer parent.Stop()
	if err := parent.Pass("tftest-claim", "key", udpConn(t), nil); err != nil {
		t.Fatal(err)
	}
	child := handoffInProcess(t, parent)
	ctx := context.Background()
	if _, err := Listen(ctx, child, "tftest-claim://x"); !errors.Is(err, ErrUnknownTransport) {
		t.Fatalf("Listen: %v", err)
	}
	// The inherited socket is back, to be claimed by the right call.
	if got := child.Inherited("tftest-claim"); !slices.Equal(got, []string{"key"}) {
		t.Fatalf("after the wrong Listen: Inherited = %q, want [key]", got)
	}
	pc, err := ListenPacket(ctx, child, "tftest-claim://x")
	if err != nil {
		t.Fatalf("ListenPacket: %v", err)
	}
	pc.Close()
}
