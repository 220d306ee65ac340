package steer

// Kind is what the invariant header (RFC 8999) says about a datagram.
type Kind uint8

const (
	// KindInvalid: too short to hold the header its first byte announces.
	KindInvalid Kind = iota
	// KindShort: a short header; the destination connection ID is the
	// IDLen bytes after the first byte.
	KindShort
	// KindLong: a long header of version 1 or another non-zero version.
	KindLong
	// KindVersionNegotiation: a long header of version 0.
	KindVersionNegotiation
)

// Classify reads the destination connection ID of a QUIC datagram p by the
// version-independent invariants of RFC 8999 only: the header form bit,
// then, for a long header, the version and the length-prefixed
// destination ID; for a short header, the IDLen bytes after the first.
// dcid aliases p. It never allocates and never panics.
func Classify(p []byte) (kind Kind, dcid []byte) {
	if len(p) == 0 {
		return KindInvalid, nil
	}
	if p[0]&0x80 == 0 {
		if len(p) < 1+IDLen {
			return KindInvalid, nil
		}
		return KindShort, p[1 : 1+IDLen]
	}
	// Long header: first byte, 4-byte version, DCID length, DCID.
	if len(p) < 6 {
		return KindInvalid, nil
	}
	n := int(p[5])
	if len(p) < 6+n {
		return KindInvalid, nil
	}
	if p[1]|p[2]|p[3]|p[4] == 0 {
		return KindVersionNegotiation, p[6 : 6+n]
	}
	return KindLong, p[6 : 6+n]
}
