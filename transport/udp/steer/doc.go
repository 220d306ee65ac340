// Package steer steers the datagrams of a UDP socket shared by every
// generation of a service to the generation that owns their connection,
// so that QUIC connections survive upgrades. It needs no QUIC library:
// the quic-go adapter is the separate module transport/quic.
//
// Server-chosen connection IDs carry the owning generation's tag (Codec:
// IDLen bytes in every generation, a tag, random bits and a keyed check
// under a secret all generations share, which tells them apart from the
// random IDs clients choose). Each datagram is classified by the
// version-independent header of RFC 8999 alone (Classify):
//   - an ID tagged with another live generation (short header, Handshake,
//     0-RTT, Initial after Retry): forwarded to it;
//   - a short header tagged with a generation that has exited: reported
//     gone (Config.Gone; the QUIC adapter answers with a stateless reset);
//   - a short header whose ID fails the check: dropped (short-header IDs
//     are always the server's own, so it is forged or random);
//   - anything else (client-chosen IDs, version negotiation, unknown
//     versions, this generation's own): read here. New connections so
//     belong to the generation that reads their first datagram, the newest
//     one once the old one has handed over.
//
// Forwarding uses a unixgram socketpair per upgrade, passed to the child
// as a companion file, with copies of the older generations' ends, so any
// generation forwards in one hop. Reads and forwards are batched
// (recvmmsg, sendmmsg); forwards never block (a full socket drops the
// datagram: QUIC retransmits); a refused forward means every copy of the
// owner's end is closed, so the owner has exited. A forwarded datagram
// carries the client's address (zone included) and the control messages
// (ECN, packet info) the shared socket read with it. Replies always leave
// through the shared socket. Once a generation has handed over (its
// successor is ready), it stops reading the shared socket and reads only
// what is forwarded to it.
//
// Steering is implemented on Linux only: elsewhere Listen returns
// ErrNotSupported. A service that does not use this package shares its
// UDP socket exactly as the udp package does.
package steer
