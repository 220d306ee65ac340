package steer

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/tableflip-go/tableflip/tableflip"
)

// ErrNotSupported is returned by Listen where steering is not implemented
// (everywhere but Linux). It wraps tableflip.ErrNotSupported.
var ErrNotSupported = errors.Join(errors.New("steer: steering needs Linux"), tableflip.ErrNotSupported)

// A Message is one datagram read by Conn.ReadBatch. Its fields are those
// of golang.org/x/net/ipv4.Message, in the same order, so that a
// []ipv4.Message element converts to a *Message without copying.
type Message struct {
	// Buffers[0] receives the datagram; the others are not used.
	Buffers [][]byte
	// OOB receives the control messages (ECN, packet info) the kernel
	// gave with the datagram, as the shared socket read them.
	OOB []byte
	// Addr is the client's address, a *net.UDPAddr.
	Addr net.Addr
	// N and NN are the lengths of the datagram and of its control
	// messages; Flags is not used.
	N, NN, Flags int
}

// Config tunes a Conn. Its zero value works.
type Config struct {
	// Gone is called, on the goroutine that called ReadBatch, with each
	// short-header datagram tagged with a generation that has exited (or
	// that this generation never knew). The QUIC adapter answers it with
	// a stateless reset. p and oob are valid only during the call. Nil
	// means drop them.
	Gone func(p, oob []byte, from netip.AddrPort)
	// SendBuffer is SO_SNDBUF (and SO_RCVBUF) of the forwarding sockets;
	// zero means 4 MiB. A full socket drops the datagram rather than
	// block the read loop (QUIC retransmits).
	SendBuffer int
}

// Stats counts what a Conn did with the datagrams it read.
type Stats struct {
	// Local datagrams were this generation's (or a new connection's).
	Local uint64
	// Forwarded datagrams went to the generation that owns them;
	// Dropped ones could not (its socket was full).
	Forwarded, Dropped uint64
	// Inbox datagrams were forwarded to this generation by another one.
	Inbox uint64
	// Gone datagrams were tagged with a generation that has exited.
	Gone uint64
	// Invalid datagrams were short headers with an ID no generation of
	// this service made; they are dropped.
	Invalid uint64
}

type counters struct {
	local, forwarded, dropped, inbox, gone, invalid atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Local: c.local.Load(), Forwarded: c.forwarded.Load(), Dropped: c.dropped.Load(),
		Inbox: c.inbox.Load(), Gone: c.gone.Load(), Invalid: c.invalid.Load(),
	}
}

// SecretLen is the length of the secret every generation shares.
const SecretLen = 32

// route decides where a datagram goes.
type route int

const (
	routeLocal route = -1
	routeGone  route = -2
	routeDrop  route = -3
)

// decide is the routing rule: a datagram whose destination ID carries
// another live generation's tag goes to it; a short header tagged with a
// generation that is not alive is gone; a short header whose ID fails the
// check is dropped (every ID a client puts in a short header was chosen
// by a generation of this service, so it is forged or random, and quic-go
// would answer it with a stateless reset that no rate limits); everything
// else (our own, a client-chosen ID in a long header, version
// negotiation, other versions) is ours. live reports whether a tag's
// generation can still be reached.
func decide(codec *Codec, own uint8, p []byte, live func(uint8) bool) (route, uint8) {
	kind, dcid := Classify(p)
	if kind != KindShort && kind != KindLong {
		return routeLocal, 0
	}
	tag, ok := codec.Tag(dcid)
	if !ok && kind == KindShort {
		return routeDrop, 0
	}
	if !ok || tag == own {
		return routeLocal, 0
	}
	if live(tag) {
		return route(tag), tag
	}
	if kind == KindShort {
		return routeGone, tag
	}
	return routeLocal, 0
}
