package tfquic

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/udp/steer"
)

// Config tunes a Transport. Its zero value works.
type Config struct {
	// Linger is how long a draining generation keeps routing after it
	// closed its last connections with CONNECTION_CLOSE, so that a close
	// that was lost is sent again. Zero means 300 ms.
	Linger time.Duration
	// ResetRate is how many stateless resets per second this generation
	// sends for the connections of generations that have exited (with a
	// burst of a tenth of it, at least 1). Zero means 1000; negative
	// sends none.
	ResetRate int
	// SendBuffer is the size of the forwarding sockets' buffers; see
	// steer.Config.
	SendBuffer int
	// CloseCode and CloseReason are what connections are closed with at
	// the drain deadline. The zero value is application error 0,
	// "server upgrading".
	CloseCode   quic.ApplicationErrorCode
	CloseReason string
}

// ErrDrained is returned by Accept once the transport is closed after
// Drain.
var ErrDrained = errors.New("tfquic: drained")

// Transport is a quic-go Transport over a UDP socket shared by every
// generation, each datagram steered to the generation that owns its
// connection.
type Transport struct {
	// QUIC is the quic-go transport: its Conn, ConnectionIDGenerator,
	// StatelessResetKey and TokenGeneratorKey are set; set other fields
	// before the first Listen or Dial.
	QUIC *quic.Transport

	sc        *steer.Conn
	cfg       Config
	log       *zap.Logger
	ticketKey [32]byte
	resetter  resetter

	mu        sync.Mutex
	conns     map[*quic.Conn]func() bool
	listeners []quicListener
	draining  bool
	final     bool // Stop with no successor: nobody else will serve
	drainCh   chan struct{}
	idle      chan struct{} // closed when draining and no connection is left
	closeOnce sync.Once

	removeHooks func()
}

// New returns the Transport for network ("udp", "udp4", "udp6") and
// address: the socket is inherited from the previous generation, or
// created, and passed on, with the forwarding sockets and the secret all
// generations share. Listen on it only after tableflip's Ready. cfg may
// be nil.
func New(ctx context.Context, fds tableflip.Fds, network, address string, cfg *Config) (*Transport, error) {
	t := &Transport{log: fds.Logger(), conns: make(map[*quic.Conn]func() bool), drainCh: make(chan struct{})}
	if cfg != nil {
		t.cfg = *cfg
	}
	sc, err := steer.Listen(ctx, fds, network, address, &steer.Config{Gone: t.gone, SendBuffer: t.cfg.SendBuffer})
	if err != nil {
		return nil, fmt.Errorf("tfquic: %w", err)
	}
	t.sc = sc
	t.removeHooks = fds.AddHooks(tableflip.Hooks{FinalStop: func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.final = true
	}})
	secret := sc.Secret()
	var resetKey quic.StatelessResetKey
	var tokenKey quic.TokenGeneratorKey
	derive(secret[:], "tableflip quic stateless reset", resetKey[:])
	derive(secret[:], "tableflip quic token", tokenKey[:])
	derive(secret[:], "tableflip quic session ticket", t.ticketKey[:])
	t.resetter = newResetter(resetKey[:], t.cfg.ResetRate)
	t.QUIC = &quic.Transport{
		Conn:                  &packetConn{UDPConn: sc.UDPConn(), sc: sc},
		ConnectionIDGenerator: &IDGenerator{Codec: sc.Codec(), Tag: sc.Tag()},
		StatelessResetKey:     &resetKey,
		TokenGeneratorKey:     &tokenKey,
	}
	return t, nil
}

func derive(secret []byte, label string, out []byte) {
	k, err := hkdf.Key(sha256.New, secret, nil, label, len(out))
	if err != nil {
		panic(err) // only for lengths sha256 cannot produce
	}
	copy(out, k)
}

// Steer is the steering router under the transport (for its Stats).
func (t *Transport) Steer() *steer.Conn { return t.sc }

// TLSConfig returns a copy of c whose session tickets every generation
// can decrypt, so that clients resume (and send 0-RTT) across upgrades.
func (t *Transport) TLSConfig(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.SetSessionTicketKeys([][32]byte{t.ticketKey})
	return c
}

// Listen is quic.Transport.Listen with the TLS configuration made
// resumable across generations (TLSConfig) and the connections it accepts
// tracked for Drain.
func (t *Transport) Listen(tlsConf *tls.Config, conf *quic.Config) (*Listener, error) {
	ln, err := t.QUIC.Listen(t.TLSConfig(tlsConf), conf)
	if err != nil {
		return nil, err
	}
	return t.track(ln), nil
}

// ListenEarly is Listen for connections that can be used before the
// handshake completes (0-RTT), as HTTP/3 servers use.
func (t *Transport) ListenEarly(tlsConf *tls.Config, conf *quic.Config) (*Listener, error) {
	ln, err := t.QUIC.ListenEarly(t.TLSConfig(tlsConf), conf)
	if err != nil {
		return nil, err
	}
	return t.track(ln), nil
}

type quicListener interface {
	Accept(context.Context) (*quic.Conn, error)
	Addr() net.Addr
	Close() error
}

func (t *Transport) track(ln quicListener) *Listener {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.listeners = append(t.listeners, ln)
	if t.draining && t.final {
		ln.Close()
	}
	return &Listener{ln: ln, t: t}
}

// Listener accepts connections and records them for the drain. It
// satisfies http3.QUICListener.
type Listener struct {
	ln quicListener
	t  *Transport
}

// Accept waits for the next connection. Once the drain has begun it
// returns an error wrapping ErrDrained (and the listener's own error).
func (l *Listener) Accept(ctx context.Context) (*quic.Conn, error) {
	c, err := l.ln.Accept(ctx)
	if err != nil {
		if l.t.isDraining() {
			return nil, fmt.Errorf("%w: %w", ErrDrained, err)
		}
		return nil, err
	}
	l.t.add(c)
	return c, nil
}

// Addr is the shared socket's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting.
func (l *Listener) Close() error { return l.ln.Close() }

func (t *Transport) isDraining() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.draining
}

func (t *Transport) closeReason() string {
	if t.cfg.CloseReason == "" {
		return "server upgrading"
	}
	return t.cfg.CloseReason
}

func (t *Transport) add(c *quic.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conns[c] = context.AfterFunc(c.Context(), func() { t.remove(c) })
}

func (t *Transport) remove(c *quic.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	if len(t.conns) == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// Draining is closed when Drain has begun.
func (t *Transport) Draining() <-chan struct{} { return t.drainCh }

// Drain is what an old generation does once its successor is ready: it
// keeps serving its own connections (their datagrams still reach it,
// forwarded by the newer generation) and returns when they have all
// closed or ctx ends. It does not refuse handshakes under way: once the
// successor has taken over, the only new connections that reach this
// generation are those whose first datagrams it read before, and they are
// its own. At a final stop (no successor), Drain closes the listeners
// first. At ctx's end it closes each remaining connection with
// CONNECTION_CLOSE (Config.CloseCode), keeps routing for Config.Linger so
// that the close is repeated for clients that lost it, and closes the
// transport. It returns ctx's error if connections had to be closed, nil
// otherwise. An HTTP/3 server should start its own Shutdown (GOAWAY)
// when Draining is closed, or with Drain.
func (t *Transport) Drain(ctx context.Context) error {
	t.mu.Lock()
	if !t.draining {
		t.draining = true
		close(t.drainCh)
		if t.final {
			for _, ln := range t.listeners {
				ln.Close()
			}
		}
	}
	t.mu.Unlock()

	var err error
	for err == nil {
		t.mu.Lock()
		if len(t.conns) == 0 {
			t.mu.Unlock()
			break
		}
		if t.idle == nil {
			t.idle = make(chan struct{})
		}
		idle := t.idle
		t.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		t.mu.Lock()
		conns := make([]*quic.Conn, 0, len(t.conns))
		for c := range t.conns {
			conns = append(conns, c)
		}
		t.mu.Unlock()
		for _, c := range conns {
			c.CloseWithError(t.cfg.CloseCode, t.closeReason())
		}
		t.log.Info("tfquic: closed connections at the drain deadline", zap.Int("connections", len(conns)))
		linger := t.cfg.Linger
		if linger <= 0 {
			linger = 300 * time.Millisecond
		}
		timer := time.NewTimer(linger)
		<-timer.C
	}
	t.Close()
	return err
}

// Close closes the quic-go transport (and every connection, without
// telling the clients) and the steering socket. It is idempotent.
func (t *Transport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.removeHooks()
		t.mu.Lock()
		for _, ln := range t.listeners {
			ln.Close()
		}
		t.mu.Unlock()
		err = t.QUIC.Close()
		if cerr := t.sc.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// gone answers a short-header datagram of a generation that has exited
// with a stateless reset, so that its client learns at once that the
// connection is over rather than waiting for its idle timeout.
func (t *Transport) gone(p, _ []byte, from netip.AddrPort) {
	reset := t.resetter.reset(p)
	if reset == nil {
		return
	}
	t.sc.UDPConn().WriteToUDPAddrPort(reset, from)
}

// resetter builds rate-limited stateless resets with quic-go's token
// (HMAC-SHA256 of the connection ID under the stateless-reset key, first
// 16 bytes), so that the clients of any generation accept them. It is used
// on the read goroutine only.
type resetter struct {
	mac      hash.Hash
	rate     float64
	burst    float64
	tokens   float64
	last     time.Time
	buf      [64]byte
	sum      [sha256.Size]byte
	disabled bool
}

func newResetter(key []byte, rate int) resetter {
	if rate == 0 {
		rate = 1000
	}
	burst := float64(rate / 10)
	if burst < 1 {
		burst = 1
	}
	return resetter{mac: hmac.New(sha256.New, key), rate: float64(rate), burst: burst, tokens: burst, disabled: rate < 0}
}

// minReset is the shortest stateless reset (RFC 9000, 10.3).
const minReset = 21

// reset returns the stateless reset for short-header datagram p, or nil
// when the rate is exceeded or p is too short to answer: a reset is
// always shorter than the datagram that caused it (so resets cannot
// loop) and at most 43 bytes.
func (r *resetter) reset(p []byte) []byte {
	if r.disabled || len(p) <= minReset || len(p) < 1+steer.IDLen {
		return nil
	}
	now := time.Now()
	if !r.last.IsZero() {
		r.tokens += now.Sub(r.last).Seconds() * r.rate
		if r.tokens > r.burst {
			r.tokens = r.burst
		}
	}
	r.last = now
	if r.tokens < 1 {
		return nil
	}
	r.tokens--
	size := min(len(p)-1, 43)
	b := r.buf[:size]
	rand.Read(b[:size-16])
	b[0] = b[0]&0x3f | 0x40
	r.mac.Reset()
	r.mac.Write(p[1 : 1+steer.IDLen])
	copy(b[size-16:], r.mac.Sum(r.sum[:0]))
	return b
}
