package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// capture is a client's UDP socket that keeps a copy of the last
// short-header datagram the client sent: one of its connection's, tagged
// with the generation that owns the connection.
type capture struct {
	*net.UDPConn
	mu   sync.Mutex
	last []byte
}

func (c *capture) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	if len(b) > 9 && b[0]&0x80 == 0 {
		c.mu.Lock()
		c.last = bytes.Clone(b[:min(len(b), 1200)])
		c.mu.Unlock()
	}
	return c.UDPConn.WriteMsgUDP(b, oob, addr)
}

func (c *capture) shortHeader() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.last)
}

// Hostile datagrams (random bytes, truncated headers, forged tags, and a
// flood of short headers tagged with a generation that is gone) never
// crash or stall the server, and the stateless resets the flood causes are
// rate-limited (1000/s with a burst of 100 by default).
func TestHostileDatagrams(t *testing.T) {
	s := start(t, "-drain", "60s")
	old := s.current()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cc := &capture{UDPConn: pc}
	tr := &quic.Transport{Conn: cc}
	defer tr.Close()
	raddr, _ := net.ResolveUDPAddr("udp", s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, raddr, clientTLS, clientConf)
	if err != nil {
		t.Fatal(err)
	}
	mustAsk(t, c, old)
	s.upgrade(t)
	mustAsk(t, c, old)
	tagged := cc.shortHeader()
	if tagged == nil {
		t.Fatal("the client sent no short-header datagram")
	}
	// Only the header matters to the router; make it long enough that a
	// reset (shorter than the datagram, at least 21 bytes) is possible.
	tagged = append(tagged, make([]byte, max(0, 100-len(tagged)))...)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.killed = map[int]bool{old: true}
	s.exited(t, old, 10*time.Second)
	c.CloseWithError(0, "")

	attacker, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	var resets int
	var lastReset time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			attacker.SetReadDeadline(time.Now().Add(time.Second))
			n, err := attacker.Read(buf)
			if err != nil {
				return // a second without a reset: the flood is over
			}
			if n < len(tagged) && buf[0]&0xc0 == 0x40 {
				resets++
				lastReset = time.Now()
			}
		}
	})
	start := time.Now()
	buf := make([]byte, 1300)
	for i := range 2000 {
		n := 1 + i%len(buf)
		rand.Read(buf[:n])
		attacker.Write(buf[:n])
	}
	for _, p := range [][]byte{{0x40}, {0xc0, 0, 0, 0, 1, 20, 1}, {0x80, 0, 0, 0, 0}, tagged[:5]} {
		attacker.Write(p)
	}
	forged := bytes.Clone(tagged)
	forged[8] ^= 1 // the check no longer matches
	for range 1000 {
		attacker.Write(forged)
	}
	for range 20000 {
		attacker.Write(tagged)
	}
	flooded := time.Since(start)
	// The server still serves, at once.
	mustAsk(t, dial(t, s.addr), s.current())
	wg.Wait()
	// Every reset was sent between start and the last one's arrival.
	elapsed := lastReset.Sub(start)
	if limit := 100 + int(1000*elapsed.Seconds()) + 1; resets > limit {
		t.Errorf("%d stateless resets in %v, want at most %d (rate-limited)", resets, elapsed, limit)
	}
	if resets == 0 {
		t.Error("no stateless reset for the gone generation's datagrams")
	}
	t.Logf("flood of 23000 datagrams sent in %v; %d stateless resets in %v", flooded.Round(time.Millisecond), resets, elapsed.Round(time.Millisecond))
	s.stop(t)
}
