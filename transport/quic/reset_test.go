package tfquic

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/transport/udp/steer"
)

func shortPacket(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x40
	copy(p[1:], "ABCDEFGH")
	return p
}

// The reset carries quic-go's token for the connection ID (HMAC-SHA256
// under the stateless-reset key), is shorter than the packet, at most 43
// bytes, and looks like a short header.
func TestResetPacket(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	r := newResetter(key, 0)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("ABCDEFGH"))
	token := mac.Sum(nil)[:16]
	for _, n := range []int{22, 30, 43, 44, 1200} {
		reset := r.reset(shortPacket(n))
		if reset == nil {
			t.Fatalf("%d bytes: no reset", n)
		}
		if len(reset) >= n || len(reset) > 43 || len(reset) < minReset {
			t.Errorf("%d bytes: reset of %d bytes", n, len(reset))
		}
		if reset[0]&0xc0 != 0x40 {
			t.Errorf("%d bytes: first byte %#x, want a short header", n, reset[0])
		}
		if !bytes.Equal(reset[len(reset)-16:], token) {
			t.Errorf("%d bytes: token %x, want %x", n, reset[len(reset)-16:], token)
		}
	}
	for _, n := range []int{0, 9, 21} {
		if reset := r.reset(shortPacket(max(n, 1+steer.IDLen))[:n]); reset != nil {
			t.Errorf("%d bytes: reset of %d bytes, want none (a reset must be smaller and at least 21 bytes)", n, len(reset))
		}
	}
}

// A flood gets the burst, then the rate.
func TestResetRateLimited(t *testing.T) {
	r := newResetter(make([]byte, 32), 100) // burst 10
	p := shortPacket(100)
	start := time.Now()
	sent := 0
	for range 100000 {
		if r.reset(p) != nil {
			sent++
		}
	}
	elapsed := time.Since(start)
	if limit := 10 + int(elapsed.Seconds()*100) + 1; sent > limit || sent < 10 {
		t.Errorf("%d resets for 100000 packets in %v, want 10 to %d", sent, elapsed, limit)
	}
	if r := newResetter(make([]byte, 32), -1); r.reset(p) != nil {
		t.Error("ResetRate < 0 sends resets")
	}
}
