package tableflip_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/tableflip-go/tableflip/tableflip"
	_ "github.com/tableflip-go/tableflip/transport/udp"
)

// One Upgrader per process: a second New fails, clearly, until the first
// is stopped.
func TestSecondNewFails(t *testing.T) {
	first, err := tableflip.New(tableflip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := tableflip.New(tableflip.Options{})
	if err == nil {
		second.Stop()
		first.Stop()
		t.Fatal("a second New succeeded while the first Upgrader runs")
	}
	if !errors.Is(err, tableflip.ErrDuplicate) || !strings.Contains(err.Error(), "not stopped") {
		t.Errorf("second New: %v, want ErrDuplicate saying the first is not stopped", err)
	}
	first.Stop()
	third, err := tableflip.New(tableflip.Options{})
	if err != nil {
		t.Fatalf("New after Stop: %v", err)
	}
	third.Stop()
}

// packetOnly is a transport without Kinder whose Open passes a packet
// socket: what Listen (wrong kind) did through it must be undone.
type packetOnly struct{}

func (packetOnly) Name() string { return "tftest-packet" }
func (packetOnly) Open(ctx context.Context, fds tableflip.Fds, address string) (io.Closer, error) {
	pc, err := net.ListenPacket("udp", address)
	if err != nil {
		return nil, err
	}
	if err := fds.Pass("tftest-packet", "key", pc.(*net.UDPConn), nil); err != nil {
		pc.Close()
		return nil, err
	}
	return pc, nil
}

func init() { tableflip.MustRegister(packetOnly{}) }

func TestListenWrongKindUndoes(t *testing.T) {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer upg.Stop()
	ctx := context.Background()
	if _, err := tableflip.Listen(ctx, upg, "tftest-packet://127.0.0.1:0"); !errors.Is(err, tableflip.ErrUnknownTransport) {
		t.Fatalf("Listen of a packet transport: %v, want ErrUnknownTransport", err)
	}
	// The key is free again: the retry with the right call works.
	pc, err := tableflip.ListenPacket(ctx, upg, "tftest-packet://127.0.0.1:0")
	if err != nil {
		t.Fatalf("ListenPacket after the wrong Listen: %v", err)
	}
	pc.Close()
}

// Every error wraps a sentinel.
func TestErrorsWrapSentinels(t *testing.T) {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer upg.Stop()
	ctx := context.Background()
	c, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer c.Close()
	uc := c.(*net.UDPConn)
	_, kindErr := tableflip.Listen(ctx, upg, "udp://127.0.0.1:0")
	_, schemeErr := tableflip.Open(ctx, upg, "no-scheme")
	for _, tc := range []struct {
		name string
		err  error
		is   error
	}{
		{"Pass with an empty transport name", upg.Pass("", "k", uc, nil), tableflip.ErrProtocol},
		{"Pass with a key too long", upg.Pass("t", strings.Repeat("k", 5000), uc, nil), tableflip.ErrProtocol},
		{"Pass with metadata too large", upg.Pass("t", "k", uc, make([]byte, 70<<10)), tableflip.ErrProtocol},
		{"Register an invalid name", tableflip.Register(badName{}), tableflip.ErrUnknownTransport},
		{"Open without a scheme", schemeErr, tableflip.ErrUnknownTransport},
		{"Listen of a packet scheme", kindErr, tableflip.ErrUnknownTransport},
	} {
		if !errors.Is(tc.err, tc.is) {
			t.Errorf("%s: %v, want it to wrap %v", tc.name, tc.err, tc.is)
		}
	}
}

type badName struct{ packetOnly }

func (badName) Name() string { return "bad/name" }
