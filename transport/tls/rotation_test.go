package tlstransport_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/testcert"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	tlstransport "github.com/tableflip-go/tableflip/transport/tls"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// serveHello accepts connections on ln and writes "hello" on each, until
// ln is closed.
func serveHello(ln net.Listener) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.WriteString(c, "hello")
			})
		}
	})
	return wg.Wait
}

// dial makes one connection, reads the greeting (which also takes in the
// session ticket the server sent after the handshake) and reports whether
// it resumed a session.
func dial(t *testing.T, addr string, cfg *tls.Config) bool {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().DidResume
}

// Within one generation, keys rotate on the clock: a new key every
// Rotation, the old ones decrypting until Lifetime after their creation.
func TestTicketKeysRotate(t *testing.T) {
	ca, err := testcert.NewCA("tlstransport test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Leaf(7, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	upg := tablefliptest.New(nil)
	defer upg.Stop()
	ln, err := tlstransport.Listen(context.Background(), upg, "tcp", "127.0.0.1:0", &tlstransport.Config{
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
		Tickets: tlstransport.TicketOptions{Rotation: time.Hour, Lifetime: 3 * time.Hour, Now: clock.Now},
	})
	if err != nil {
		t.Fatal(err)
	}
	wait := serveHello(ln)
	defer wait()
	defer ln.Close()
	addr := ln.Addr().String()

	keys := ln.TicketKeys()
	if len(keys) != 1 || !keys[0].Created.Equal(clock.Now()) {
		t.Fatalf("keys %v, want one made now", keys)
	}
	first := &firstTicketCache{}
	if dial(t, addr, clientTLS(ca, first)) {
		t.Fatal("first connection resumed")
	}
	if !dial(t, addr, clientTLS(ca, first)) {
		t.Fatal("did not resume with the current key")
	}

	clock.Advance(59 * time.Minute)
	if n := len(ln.TicketKeys()); n != 1 {
		t.Fatalf("%d keys before the rotation is due", n)
	}
	for h := 1; h <= 3; h++ {
		clock.Advance(time.Hour)
		resumed := dial(t, addr, clientTLS(ca, first))
		keys := ln.TicketKeys()
		if want := min(h+1, 3); len(keys) != want {
			t.Errorf("after %d rotations: %d keys, want %d", h, len(keys), want)
		}
		// The first key was made at 0:00; at 3:59 it is past its three
		// hours.
		if want := h < 3; resumed != want {
			t.Errorf("at %s the first key's ticket resumed=%v, want %v", clock.Now().Format("15:04"), resumed, want)
		}
	}
	// A client with a fresh ticket resumes with the current key.
	fresh := tls.NewLRUClientSessionCache(1)
	dial(t, addr, clientTLS(ca, fresh))
	if !dial(t, addr, clientTLS(ca, fresh)) {
		t.Error("a fresh ticket did not resume")
	}
}
