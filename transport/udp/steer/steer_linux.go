//go:build linux

package steer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/udp"
)

// companion is the transport name the forwarding sockets are passed under.
const companion = "udp-steer"

// maxBatch is the most datagrams one ReadBatch returns (quic-go asks for 8).
const maxBatch = 64

// A forwarded datagram is a fixed header, then the payload:
//
//	[0]      'T'
//	[1]      header version (1)
//	[2:4]    length of the control messages, little endian
//	[4:32]   the client's address as the kernel gave it (a sockaddr_in
//	         or sockaddr_in6, zone index included)
//	[32:160] the control messages (ECN, packet info)
const (
	fwdMagic   = 'T'
	fwdVersion = 1
	nameLen    = 28
	oobMax     = 128
	fwdHdrLen  = 4 + nameLen + oobMax
)

// Conn is a UDP socket shared by every generation, read through a router
// that steers each datagram to the generation owning its connection ID.
// ReadBatch returns this generation's datagrams only, from the shared
// socket and from the forwarding sockets of other generations; replies go
// out through the shared socket (UDPConn).
type Conn struct {
	udp      *net.UDPConn
	sharedFd int
	codec    *Codec
	secret   [SecretLen]byte
	own      uint8
	cfg      Config
	base     string
	log      *zap.Logger

	ep    *os.File // epoll set: the shared socket and the inboxes
	epRaw syscall.RawConn
	epfd  int

	removeHooks func()
	handedOver  atomic.Bool
	closeOnce   sync.Once

	mu      sync.Mutex
	peers   [256]int // forwarding socket by generation tag, -1 for none
	inboxes []int    // sockets other generations forward to us on
	pending *upgrade // the forwarding pair of the upgrade under way
	closed  bool

	// Scratch of the read loop, used with mu held.
	names  [maxBatch][32]byte
	hdrs   [maxBatch][fwdHdrLen]byte
	iovs   [maxBatch][2]unix.Iovec
	mmsg   [maxBatch]unix.Mmsghdr
	routes [maxBatch]route
	sent   [maxBatch]bool

	counters
}

type upgrade struct {
	fd  int // our end, which the child and its successors send to
	tag uint8
}

// Listen returns the steering socket for network ("udp", "udp4" or
// "udp6") and address. The UDP socket itself is udp.ListenPacket's:
// inherited, or created and passed on. Under it, Listen inherits the
// forwarding sockets to every older live generation, the secret the
// generations share, and registers the hooks that create the forwarding
// socket to the next generation at each upgrade.
//
// Call ReadBatch only after tableflip's Ready: the child reads nothing
// before it has committed. cfg may be nil.
func Listen(ctx context.Context, fds tableflip.Fds, network, address string, cfg *Config) (*Conn, error) {
	conn, err := udp.ListenPacket(ctx, fds, network, address)
	if err != nil {
		return nil, err
	}
	c := &Conn{udp: conn, own: Tag(fds.Generation()), base: network + " " + address, log: fds.Logger(), epfd: -1}
	if cfg != nil {
		c.cfg = *cfg
	}
	for i := range c.peers {
		c.peers[i] = -1
	}
	if err := c.init(fds); err != nil {
		c.closeFds()
		conn.Close()
		return nil, err
	}
	c.removeHooks = fds.AddHooks(tableflip.Hooks{Prepare: c.prepare, Done: c.done})
	return c, nil
}

func (c *Conn) init(fds tableflip.Fds) error {
	if err := c.grabShared(); err != nil {
		return err
	}
	f, meta, err := fds.Inherit(companion, c.base+" parent")
	switch {
	case errors.Is(err, tableflip.ErrNotInherited):
		rand.Read(c.secret[:]) // the first generation that steers
	case err != nil:
		return fmt.Errorf("steer: %w", err)
	default:
		fd, terr := takeFile(f)
		if terr != nil {
			return terr
		}
		if len(meta) < 2+SecretLen || meta[0] != fwdVersion {
			unix.Close(fd)
			return fmt.Errorf("steer: parent's metadata: %w (version %d, %d bytes)", tableflip.ErrProtocol, first(meta), len(meta))
		}
		copy(c.secret[:], meta[1:])
		parent := meta[1+SecretLen]
		c.peers[parent] = fd
		c.inboxes = append(c.inboxes, fd)
		for _, t := range meta[2+SecretLen:] {
			f, _, err := fds.Inherit(companion, c.base+" g"+strconv.Itoa(int(t)))
			if err != nil {
				c.log.Warn("steer: forwarding socket missing", zap.Int("tag", int(t)), zap.Error(err))
				continue
			}
			fd, err := takeFile(f)
			if err != nil {
				return err
			}
			c.peers[t] = fd
		}
	}
	return c.start()
}

// start makes the codec and the epoll set the router waits on: the
// shared socket (unless handed over) and the inboxes.
func (c *Conn) start() error {
	var key [16]byte
	copy(key[:], c.secret[:16])
	c.codec = NewCodec(key)
	var err error
	c.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("steer: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(c.epfd, true); err != nil {
		return fmt.Errorf("steer: epoll: %w", err)
	}
	watch := c.inboxes
	if !c.handedOver.Load() {
		watch = append([]int{c.sharedFd}, watch...)
	}
	for _, fd := range watch {
		if err := c.watch(fd); err != nil {
			return err
		}
	}
	c.ep = os.NewFile(uintptr(c.epfd), "steer-epoll")
	c.epRaw, err = c.ep.SyscallConn()
	if err != nil {
		return fmt.Errorf("steer: epoll: %w", err)
	}
	return nil
}

func (c *Conn) grabShared() error {
	rc, err := c.udp.SyscallConn()
	if err != nil {
		return fmt.Errorf("steer: %w", err)
	}
	rc.Control(func(fd uintptr) { c.sharedFd = int(fd) })
	return nil
}

func first(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// takeFile returns a non-blocking close-on-exec duplicate of f's
// descriptor and closes f.
func takeFile(f *os.File) (int, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("steer: %w", err)
	}
	fd := -1
	var derr error
	rc.Control(func(u uintptr) { fd, derr = unix.FcntlInt(u, unix.F_DUPFD_CLOEXEC, 0) })
	if derr != nil {
		return -1, fmt.Errorf("steer: dup %s: %w", f.Name(), derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("steer: %s: %w", f.Name(), err)
	}
	return fd, nil
}

func (c *Conn) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("steer: epoll_ctl: %w", err)
	}
	return nil
}

func (c *Conn) unwatch(fd int) {
	unix.EpollCtl(c.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// Codec is the connection-ID codec under the secret the generations share.
func (c *Conn) Codec() *Codec { return c.codec }

// Tag is this generation's tag, which its connection IDs carry.
func (c *Conn) Tag() uint8 { return c.own }

// Secret is the random secret every generation of the service shares (the
// first generation that steered made it). The first 16 bytes key the
// connection-ID check; derive other keys from it with a label of your own
// (HKDF), never use it directly.
func (c *Conn) Secret() [SecretLen]byte { return c.secret }

// UDPConn is the shared socket, for writing replies and socket options.
func (c *Conn) UDPConn() *net.UDPConn { return c.udp }

// Stats returns what the router has done so far.
func (c *Conn) Stats() Stats { return c.counters.stats() }

// HandedOver says whether this generation has handed over to its
// successor: it no longer reads the shared socket, only its inbox.
func (c *Conn) HandedOver() bool { return c.handedOver.Load() }

// SetReadDeadline sets the deadline of ReadBatch; a deadline in the past
// wakes a blocked ReadBatch with os.ErrDeadlineExceeded.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.ep.SetReadDeadline(t) }

// prepare makes the forwarding pair for the child: the child gets one end
// (through which it reaches us, and we reach it until the handover), with
// copies of our forwarding sockets to every older generation, so that any
// generation forwards in one hop.
func (c *Conn) prepare(ctx context.Context, h *tableflip.Handoff) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("steer: socketpair: %w", err)
	}
	ours, theirs := pair[0], pair[1]
	defer unix.Close(theirs)
	size := c.cfg.SendBuffer
	if size <= 0 {
		size = 4 << 20
	}
	for _, fd := range pair {
		// SO_*BUFFORCE needs CAP_NET_ADMIN; the plain ones are capped
		// by net.core.[wr]mem_max, which is still better than the default.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, size)
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	}
	child := Tag(h.Generation())
	meta := append([]byte{fwdVersion}, c.secret[:]...)
	meta = append(meta, c.own)
	for t, fd := range c.peers {
		if fd < 0 || uint8(t) == child || uint8(t) == c.own {
			continue
		}
		if err := h.AddFile(companion, c.base+" g"+strconv.Itoa(t), rawFd(fd), nil); err != nil {
			unix.Close(ours)
			return fmt.Errorf("steer: %w", err)
		}
		meta = append(meta, uint8(t))
	}
	if err := h.AddFile(companion, c.base+" parent", rawFd(theirs), meta); err != nil {
		unix.Close(ours)
		return fmt.Errorf("steer: %w", err)
	}
	if err := c.watch(ours); err != nil {
		unix.Close(ours)
		return err
	}
	if c.pending != nil { // a Prepare without its Done: forget it
		c.dropPendingLocked()
	}
	c.pending = &upgrade{fd: ours, tag: child}
	c.peers[child] = ours
	c.inboxes = append(c.inboxes, ours)
	return nil
}

func (c *Conn) dropPendingLocked() {
	p := c.pending
	c.pending = nil
	c.unwatch(p.fd)
	if c.peers[p.tag] == p.fd {
		c.peers[p.tag] = -1
	}
	for i, fd := range c.inboxes {
		if fd == p.fd {
			c.inboxes = append(c.inboxes[:i], c.inboxes[i+1:]...)
			break
		}
	}
	unix.Close(p.fd)
}

// done ends an upgrade: a failed one loses its forwarding pair; after a
// successful one this generation stops reading the shared socket and
// serves its connections from its inbox.
func (c *Conn) done(_ int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.pending == nil {
		return
	}
	if err != nil {
		c.dropPendingLocked()
		return
	}
	c.pending = nil
	c.handedOver.Store(true)
	c.unwatch(c.sharedFd)
}

// Close stops the router and closes the shared socket and every
// forwarding socket of this process. It is idempotent.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.removeHooks != nil {
			c.removeHooks()
		}
		if c.ep != nil {
			c.ep.Close() // waits for a ReadBatch under way
		}
		c.mu.Lock()
		c.closed = true
		c.closeFds()
		c.mu.Unlock()
		err = c.udp.Close()
	})
	return err
}

func (c *Conn) closeFds() {
	seen := map[int]bool{}
	for i, fd := range c.peers {
		if fd >= 0 && !seen[fd] {
			unix.Close(fd)
			seen[fd] = true
		}
		c.peers[i] = -1
	}
	for _, fd := range c.inboxes {
		if !seen[fd] {
			unix.Close(fd)
			seen[fd] = true
		}
	}
	c.inboxes = nil
	c.pending = nil
	if c.ep == nil && c.epfd >= 0 {
		unix.Close(c.epfd)
	}
}

// ReadBatch reads this generation's datagrams into ms, as many as are
// ready (at least one; at most 64), blocking until there is one. It
// forwards the datagrams of other live generations to them on the way.
// It has the signature of x/net's ipv4.PacketConn.ReadBatch over a
// *Message (convert []ipv4.Message element pointers); flags is ignored.
func (c *Conn) ReadBatch(ms []Message) (int, error) {
	if len(ms) > maxBatch {
		ms = ms[:maxBatch]
	}
	if len(ms) == 0 {
		return 0, nil
	}
	var n int
	var perr error
	err := c.epRaw.Read(func(uintptr) bool {
		n, perr = c.poll(ms)
		return n > 0 || perr != nil
	})
	if err != nil {
		return 0, err
	}
	return n, perr
}

func (c *Conn) poll(ms []Message) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	n := 0
	for _, fd := range c.inboxes {
		if n == len(ms) {
			return n, nil
		}
		n += c.recvInbox(fd, ms[n:])
	}
	for n == 0 && !c.handedOver.Load() {
		k, err := c.recvShared(ms)
		if err != nil {
			return 0, err
		}
		if k == 0 {
			break
		}
		n = c.steer(ms[:k])
	}
	return n, nil
}

func iov(b []byte) unix.Iovec {
	v := unix.Iovec{}
	if len(b) > 0 {
		v.Base = &b[0]
	}
	v.SetLen(len(b))
	return v
}

// recvShared reads up to len(ms) datagrams from the shared socket. It
// returns 0 when none is waiting.
func (c *Conn) recvShared(ms []Message) (int, error) {
	for i := range ms {
		c.iovs[i][0] = iov(ms[i].Buffers[0])
		h := &c.mmsg[i].Hdr
		*h = unix.Msghdr{Name: &c.names[i][0], Namelen: nameLen, Iov: &c.iovs[i][0]}
		h.SetIovlen(1)
		if len(ms[i].OOB) > 0 {
			h.Control = &ms[i].OOB[0]
			h.SetControllen(len(ms[i].OOB))
		}
	}
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.sharedFd), uintptr(unsafe.Pointer(&c.mmsg[0])), uintptr(len(ms)), unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0:
	case unix.EAGAIN, unix.EINTR:
		return 0, nil
	default:
		return 0, fmt.Errorf("steer: recvmmsg: %w", errno)
	}
	for i := range int(r) {
		ms[i].N = int(c.mmsg[i].Len)
		ms[i].NN = int(c.mmsg[i].Hdr.Controllen)
		ms[i].Flags = int(c.mmsg[i].Hdr.Flags)
	}
	return int(r), nil
}

func (c *Conn) liveLocked(tag uint8) bool { return c.peers[tag] >= 0 }

// steer routes the datagrams in ms, just read from the shared socket:
// forwards those of other live generations, reports gone ones, and
// moves this generation's to the front. It returns how many are ours.
func (c *Conn) steer(ms []Message) int {
	for i := range ms {
		c.routes[i], _ = decide(c.codec, c.own, ms[i].Buffers[0][:ms[i].N], c.liveLocked)
		c.sent[i] = false
	}
	for i := range ms {
		if r := c.routes[i]; r >= 0 && !c.sent[i] {
			c.forward(ms, uint8(r))
		}
	}
	kept := 0
	for i := range ms {
		switch c.routes[i] {
		case routeLocal:
			if kept != i {
				ms[kept].N = copy(ms[kept].Buffers[0], ms[i].Buffers[0][:ms[i].N])
				ms[kept].NN = copy(ms[kept].OOB, ms[i].OOB[:ms[i].NN])
				ms[kept].Flags = ms[i].Flags
			}
			ms[kept].Addr = sockaddrUDP(c.names[i][:])
			kept++
		case routeDrop:
			c.invalid.Add(1)
		case routeGone:
			c.gone.Add(1)
			if c.cfg.Gone != nil {
				c.cfg.Gone(ms[i].Buffers[0][:ms[i].N], ms[i].OOB[:ms[i].NN], sockaddrAddrPort(c.names[i][:]))
			}
		}
	}
	c.local.Add(uint64(kept))
	return kept
}

// forward sends every datagram of ms routed to tag in one sendmmsg, never
// blocking: what does not fit in the socket is dropped. A refused send
// means every copy of the owner's end is closed: the owner has exited,
// and its datagrams are gone from now on.
func (c *Conn) forward(ms []Message, tag uint8) {
	fd := c.peers[tag]
	k := 0
	var idx [maxBatch]int
	for i := range ms {
		if c.routes[i] != route(tag) {
			continue
		}
		c.sent[i] = true
		h := &c.hdrs[k]
		h[0], h[1] = fwdMagic, fwdVersion
		nn := copy(h[4+nameLen:], ms[i].OOB[:ms[i].NN])
		binary.LittleEndian.PutUint16(h[2:4], uint16(nn))
		copy(h[4:4+nameLen], c.names[i][:nameLen])
		c.iovs[k][0] = iov(h[:])
		c.iovs[k][1] = iov(ms[i].Buffers[0][:ms[i].N])
		mh := &c.mmsg[k].Hdr
		*mh = unix.Msghdr{Iov: &c.iovs[k][0]}
		mh.SetIovlen(2)
		idx[k] = i
		k++
	}
	done := 0
	for done < k {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&c.mmsg[done])), uintptr(k-done), unix.MSG_DONTWAIT, 0, 0)
		if errno == 0 {
			done += int(r)
			c.forwarded.Add(uint64(r))
			continue
		}
		switch errno {
		case unix.EINTR:
			continue
		case unix.ECONNREFUSED, unix.ENOTCONN, unix.EPIPE, unix.EDESTADDRREQ:
			c.ownerGone(tag)
			for _, i := range idx[done:k] {
				c.routes[i] = routeLocal
				if kind, _ := Classify(ms[i].Buffers[0][:ms[i].N]); kind == KindShort {
					c.routes[i] = routeGone
				}
			}
		default: // EAGAIN, ENOBUFS: the owner is behind; QUIC retransmits
			c.dropped.Add(uint64(k - done))
		}
		return
	}
}

func (c *Conn) ownerGone(tag uint8) {
	fd := c.peers[tag]
	c.peers[tag] = -1
	for _, in := range c.inboxes {
		if in == fd {
			return // still read; closed with the others
		}
	}
	unix.Close(fd)
	c.log.Info("steer: generation gone", zap.Int("tag", int(tag)))
}

// recvInbox reads datagrams forwarded to us on fd, the payload straight
// into ms's buffers.
func (c *Conn) recvInbox(fd int, ms []Message) int {
	for i := range ms {
		c.iovs[i][0] = iov(c.hdrs[i][:])
		c.iovs[i][1] = iov(ms[i].Buffers[0])
		h := &c.mmsg[i].Hdr
		*h = unix.Msghdr{Iov: &c.iovs[i][0]}
		h.SetIovlen(2)
	}
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&c.mmsg[0])), uintptr(len(ms)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0
	}
	kept := 0
	for i := range int(r) {
		h := &c.hdrs[i]
		total := int(c.mmsg[i].Len)
		nn := int(binary.LittleEndian.Uint16(h[2:4]))
		if total < fwdHdrLen || h[0] != fwdMagic || h[1] != fwdVersion || nn > oobMax {
			continue // not from a generation of ours: drop
		}
		if kept != i {
			copy(ms[kept].Buffers[0], ms[i].Buffers[0][:total-fwdHdrLen])
		}
		ms[kept].N = total - fwdHdrLen
		ms[kept].NN = copy(ms[kept].OOB, h[4+nameLen:4+nameLen+nn])
		ms[kept].Flags = 0
		ms[kept].Addr = sockaddrUDP(h[4 : 4+nameLen])
		kept++
	}
	c.inbox.Add(uint64(kept))
	return kept
}

// sockaddrUDP converts a raw sockaddr_in or sockaddr_in6.
func sockaddrUDP(b []byte) *net.UDPAddr {
	port := int(binary.BigEndian.Uint16(b[2:4]))
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		return &net.UDPAddr{IP: net.IPv4(b[4], b[5], b[6], b[7]), Port: port}
	case unix.AF_INET6:
		ip := make(net.IP, 16)
		copy(ip, b[8:24])
		return &net.UDPAddr{IP: ip, Port: port, Zone: zoneName(binary.NativeEndian.Uint32(b[24:28]))}
	}
	return &net.UDPAddr{}
}

func sockaddrAddrPort(b []byte) netip.AddrPort {
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port)
	}
	return netip.AddrPort{}
}

var zones sync.Map // interface index -> name

func zoneName(index uint32) string {
	if index == 0 {
		return ""
	}
	if z, ok := zones.Load(index); ok {
		return z.(string)
	}
	name := strconv.Itoa(int(index))
	if ifi, err := net.InterfaceByIndex(int(index)); err == nil {
		name = ifi.Name
	}
	zones.Store(index, name)
	return name
}

// rawFd lends a descriptor to Handoff.AddFile, which duplicates it.
type rawFd int

func (fd rawFd) SyscallConn() (syscall.RawConn, error) { return rawConn(fd), nil }

type rawConn int

func (fd rawConn) Control(f func(uintptr)) error { f(uintptr(fd)); return nil }
func (fd rawConn) Read(func(uintptr) bool) error { return errors.ErrUnsupported }
func (fd rawConn) Write(func(uintptr) bool) error {
	return errors.ErrUnsupported
}
