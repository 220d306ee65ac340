package steer

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// generations is two routers over one shared UDP socket, as after an
// upgrade: newer (tag 2) reads the socket, older (tag 1) has handed over
// and reads only its inbox, the forwarding pair between them.
type generations struct {
	newer, older *Conn
	client       *net.UDPConn
	gone         chan netip.AddrPort
}

func newGenerations(t testing.TB) *generations {
	t.Helper()
	shared, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := shared.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) })
	f, err := shared.File()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range pair {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	var secret [SecretLen]byte
	rand.Read(secret[:])
	g := &generations{gone: make(chan netip.AddrPort, 1<<16)}
	mk := func(udp *net.UDPConn, own uint8, peer uint8, fd int) *Conn {
		c := &Conn{udp: udp, own: own, secret: secret, log: zap.NewNop(), epfd: -1}
		c.cfg.Gone = func(p, oob []byte, from netip.AddrPort) {
			select {
			case g.gone <- from:
			default:
			}
		}
		for i := range c.peers {
			c.peers[i] = -1
		}
		c.peers[peer] = fd
		c.inboxes = []int{fd}
		if err := c.grabShared(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	g.older = mk(pc.(*net.UDPConn), 1, 2, pair[0])
	g.older.handedOver.Store(true)
	g.newer = mk(shared, 2, 1, pair[1])
	for _, c := range []*Conn{g.older, g.newer} {
		if err := c.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	g.client, err = net.DialUDP("udp4", nil, shared.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.client.Close() })
	return g
}

// sendUntilRead sends p every 10ms (the socket may have dropped it
// behind a flood) until the newer generation reads it.
func (g *generations) sendUntilRead(t testing.TB, p []byte, want string) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			g.client.Write(p)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	readUntil(t, g.newer, want)
	close(stop)
	wg.Wait()
}

// short is a short-header datagram to an ID tagged tag, then payload.
func (g *generations) short(tag uint8, payload string) []byte {
	id := make([]byte, IDLen)
	g.newer.codec.Generate(id, tag)
	return append(append([]byte{0x40}, id...), payload...)
}

func newMessages(n int) []Message {
	ms := make([]Message, n)
	for i := range ms {
		ms[i] = Message{Buffers: [][]byte{make([]byte, 1500)}, OOB: make([]byte, 128)}
	}
	return ms
}

// readUntil reads c until a datagram ending in want arrives, within 10s.
func readUntil(t testing.TB, c *Conn, want string) Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	ms := newMessages(8)
	for {
		n, err := c.ReadBatch(ms)
		if err != nil {
			t.Fatalf("tag %d: ReadBatch: %v (waiting for %q)", c.own, err, want)
		}
		for _, m := range ms[:n] {
			if bytes.HasSuffix(m.Buffers[0][:m.N], []byte(want)) {
				m.Buffers[0] = slices.Clone(m.Buffers[0][:m.N])
				m.OOB = slices.Clone(m.OOB[:m.NN])
				return m
			}
		}
	}
}

// A datagram of the older generation's connection, read by the newer one
// from the shared socket, reaches the older one with the client's address
// and the control messages; the newer one reads its own.
func TestForwardToOwner(t *testing.T) {
	g := newGenerations(t)
	g.client.Write(g.short(1, "to-older"))
	g.client.Write(g.short(2, "to-newer"))
	var wg sync.WaitGroup
	var mine Message
	wg.Go(func() { mine = readUntil(t, g.newer, "to-newer") })
	theirs := readUntil(t, g.older, "to-older")
	wg.Wait()
	if got, want := theirs.Addr.String(), g.client.LocalAddr().String(); got != want {
		t.Errorf("forwarded datagram from %s, want the client's %s", got, want)
	}
	if theirs.NN == 0 || !bytes.Equal(theirs.OOB, mine.OOB) {
		t.Errorf("forwarded control messages %x, want the shared socket's %x", theirs.OOB, mine.OOB)
	}
	if want := g.short(1, ""); !bytes.Equal(theirs.Buffers[0][:1], want[:1]) {
		t.Errorf("payload %x", theirs.Buffers[0])
	}
	if s := g.newer.Stats(); s.Forwarded != 1 || s.Local != 1 {
		t.Errorf("newer: %+v, want 1 forwarded, 1 local", s)
	}
	if s := g.older.Stats(); s.Inbox != 1 {
		t.Errorf("older: %+v, want 1 from the inbox", s)
	}
}

// Once the older generation has exited (its end of the pair closed), the
// forward is refused and its short-header datagrams are reported gone;
// long headers tagged with it are handled locally.
func TestOwnerGone(t *testing.T) {
	g := newGenerations(t)
	g.older.Close()
	g.client.Write(g.short(1, "first"))
	g.client.Write(g.short(1, "second"))
	long := append([]byte{0xc0, 0, 0, 0, 1, IDLen}, g.short(1, "long")[1:]...)
	g.client.Write(long)
	readUntil(t, g.newer, "long")
	for i := range 2 {
		select {
		case from := <-g.gone:
			if from.String() != g.client.LocalAddr().String() {
				t.Errorf("gone datagram %d from %s", i, from)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("gone datagram %d not reported", i)
		}
	}
	if s := g.newer.Stats(); s.Gone != 2 || s.Forwarded != 0 {
		t.Errorf("%+v, want 2 gone, 0 forwarded", s)
	}
}

// Hostile datagrams (random bytes, truncated headers, forged tags, and a
// flood of short headers tagged with a gone generation) never crash or
// stall the router: a datagram sent after them is read, and gone
// datagrams are still told apart one by one.
func TestHostileDatagrams(t *testing.T) {
	g := newGenerations(t)
	g.older.Close()
	seen := make(chan struct{})
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		ms := newMessages(8)
		var once sync.Once
		for {
			select {
			case <-stop:
				return
			default:
			}
			g.newer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, _ := g.newer.ReadBatch(ms)
			for _, m := range ms[:n] {
				if bytes.HasSuffix(m.Buffers[0][:m.N], []byte("after")) {
					once.Do(func() { close(seen) })
				}
			}
		}
	})
	defer func() { close(stop); readers.Wait() }()

	buf := make([]byte, 1300)
	for i := range 2000 {
		n := 1 + i%len(buf)
		rand.Read(buf[:n])
		g.client.Write(buf[:n])
	}
	for _, p := range [][]byte{{0x40}, {0xc0, 0, 0, 0, 1, 20, 1}, {0x80, 0, 0, 0, 0}, {}} {
		g.client.Write(p)
	}
	forged := g.short(1, "forged")
	forged[1+IDLen-1] ^= 1 // breaks the check
	for range 500 {
		g.client.Write(forged)
	}
	flood := g.short(1, "flood-flood-flood-flood-flood")
	for range 20000 {
		g.client.Write(flood)
	}
	// The kernel drops what the socket cannot hold: send until read.
	after := g.short(2, "after")
	deadline := time.After(10 * time.Second)
	for waiting := true; waiting; {
		g.client.Write(after)
		select {
		case <-seen:
			waiting = false
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("datagram after the hostile ones not read: %+v", g.newer.Stats())
		}
	}
	for len(g.gone) > 0 {
		<-g.gone
	}
	for i := range 10 {
		g.client.Write(g.short(1, "gone-after-flood"))
		select {
		case <-g.gone:
		case <-time.After(10 * time.Second):
			t.Fatalf("gone datagram %d after the flood not reported: %+v", i, g.newer.Stats())
		}
	}
	t.Logf("%+v", g.newer.Stats())
}

// A forwarding socket that is full drops the datagram instead of
// blocking the read loop.
func TestForwardFullDrops(t *testing.T) {
	g := newGenerations(t)
	// The older generation does not read; its socket fills. One datagram
	// at a time, so that the shared socket drops none.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ms := newMessages(8)
		for {
			select {
			case <-stop:
				return
			default:
			}
			g.newer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			g.newer.ReadBatch(ms)
		}
	})
	p := g.short(1, string(make([]byte, 1200)))
	for i := range 20000 {
		g.client.Write(p)
		deadline := time.Now().Add(5 * time.Second)
		for {
			s := g.newer.Stats()
			if s.Forwarded+s.Dropped > uint64(i) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("datagram %d not routed: %+v", i, s)
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
		if g.newer.Stats().Dropped > 10 {
			break
		}
	}
	close(stop)
	wg.Wait()
	s := g.newer.Stats()
	if s.Dropped == 0 {
		t.Errorf("%+v: want drops once the owner's socket is full", s)
	}
	g.sendUntilRead(t, g.short(2, "after"), "after")
	t.Logf("%+v", s)
}

func TestReadDeadline(t *testing.T) {
	g := newGenerations(t)
	g.newer.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := g.newer.ReadBatch(newMessages(1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadBatch after the deadline: %v", err)
	}
}

// BenchmarkDirect and BenchmarkForward compare one generation reading
// its datagrams from the shared socket with an older generation reading
// them forwarded by the newer one: the datagram rate and the allocations
// per datagram of the forwarding (the newer generation's side only).
func BenchmarkDirect(b *testing.B) { benchRead(b, false) }

func BenchmarkForward(b *testing.B) { benchRead(b, true) }

func benchRead(b *testing.B, forward bool) {
	g := newGenerations(b)
	tag, reader := uint8(2), g.newer
	if forward {
		tag, reader = 1, g.older
	}
	p := g.short(tag, string(make([]byte, 1200)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if forward {
		// The newer generation routes; its reads return nothing local.
		wg.Go(func() {
			ms := newMessages(8)
			for {
				if _, err := g.newer.ReadBatch(ms); err != nil {
					return
				}
			}
		})
	}
	// Send in a paced way: at most 256 datagrams ahead of the reader.
	var read, sent int64
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	wg.Go(func() {
		for {
			mu.Lock()
			for sent-read >= 256 {
				select {
				case <-stop:
					mu.Unlock()
					return
				default:
				}
				cond.Wait()
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			default:
			}
			g.client.Write(p)
			mu.Lock()
			sent++
			mu.Unlock()
		}
	})
	ms := newMessages(8)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for got := 0; got < b.N; {
		reader.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := reader.ReadBatch(ms)
		if err != nil {
			// A datagram lost (a full buffer): let the sender go on.
			mu.Lock()
			read = sent
			cond.Broadcast()
			mu.Unlock()
			continue
		}
		got += n
		mu.Lock()
		read += int64(n)
		cond.Broadcast()
		mu.Unlock()
	}
	b.StopTimer()
	close(stop)
	mu.Lock()
	cond.Broadcast()
	mu.Unlock()
	g.newer.SetReadDeadline(time.Now())
	wg.Wait()
	s := g.newer.Stats()
	b.ReportMetric(float64(s.Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkForwardLatency measures what a forward adds to a datagram's
// trip, one datagram at a time: client to the shared socket to the owner,
// direct and forwarded, p50 and p99.
func BenchmarkForwardLatency(b *testing.B) {
	for _, forward := range []bool{false, true} {
		name := "direct"
		if forward {
			name = "forwarded"
		}
		b.Run(name, func(b *testing.B) {
			g := newGenerations(b)
			tag, reader := uint8(2), g.newer
			var wg sync.WaitGroup
			if forward {
				tag, reader = 1, g.older
				wg.Go(func() {
					ms := newMessages(8)
					for {
						if _, err := g.newer.ReadBatch(ms); err != nil {
							return
						}
					}
				})
			}
			p := g.short(tag, string(make([]byte, 100)))
			lat := make([]time.Duration, 0, b.N)
			ms := newMessages(1)
			reader.SetReadDeadline(time.Now().Add(time.Minute))
			for b.Loop() {
				start := time.Now()
				binary.LittleEndian.PutUint64(p[len(p)-8:], uint64(start.UnixNano()))
				g.client.Write(p)
				if _, err := reader.ReadBatch(ms); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			g.newer.SetReadDeadline(time.Now())
			wg.Wait()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			}
		})
	}
}
