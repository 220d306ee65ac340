package tfquic

import (
	"net"
	"time"
	"unsafe"

	"github.com/quic-go/quic-go"
	"golang.org/x/net/ipv4"

	"github.com/tableflip-go/tableflip/transport/udp/steer"
)

// packetConn is what quic-go reads and writes: the shared UDP socket for
// writes and socket options (so GSO, ECN, DF and packet info keep working),
// and the steering router for reads. quic-go finds ReadBatch on it and
// reads through it in batches, into its own buffers.
type packetConn struct {
	*net.UDPConn
	sc *steer.Conn
}

var (
	_ quic.OOBCapablePacketConn = (*packetConn)(nil)
	_ interface {
		ReadBatch([]ipv4.Message, int) (int, error)
	} = (*packetConn)(nil)
)

// The steering Message has the fields of ipv4.Message in the same order,
// so one converts to the other in place.
var _ = (*steer.Message)((*ipv4.Message)(nil))

func (c *packetConn) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	return c.sc.ReadBatch(unsafe.Slice((*steer.Message)(&ms[0]), len(ms)))
}

func (c *packetConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	m := [1]steer.Message{{Buffers: [][]byte{b}, OOB: oob}}
	if _, err := c.sc.ReadBatch(m[:]); err != nil {
		return 0, 0, 0, nil, err
	}
	a, _ := m[0].Addr.(*net.UDPAddr)
	return m[0].N, m[0].NN, m[0].Flags, a, nil
}

func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, _, _, a, err := c.ReadMsgUDP(b, nil)
	if err != nil {
		return 0, nil, err
	}
	return n, a, nil
}

func (c *packetConn) SetReadDeadline(t time.Time) error { return c.sc.SetReadDeadline(t) }

func (c *packetConn) SetDeadline(t time.Time) error {
	if err := c.sc.SetReadDeadline(t); err != nil {
		return err
	}
	return c.UDPConn.SetWriteDeadline(t)
}

func (c *packetConn) Close() error { return c.sc.Close() }
