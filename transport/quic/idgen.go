package tfquic

import (
	"github.com/quic-go/quic-go"

	"github.com/tableflip-go/tableflip/transport/udp/steer"
)

// IDGenerator is a quic.ConnectionIDGenerator whose IDs carry a
// generation's tag: every datagram of a connection this generation
// accepted, wherever it arrives, can be steered back to it. It makes the
// first server-chosen ID, every NEW_CONNECTION_ID and Retry IDs.
type IDGenerator struct {
	Codec *steer.Codec
	Tag   uint8
}

var _ quic.ConnectionIDGenerator = (*IDGenerator)(nil)

// GenerateConnectionID returns a new tagged ID.
func (g *IDGenerator) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [steer.IDLen]byte
	if err := g.Codec.Generate(b[:], g.Tag); err != nil {
		return quic.ConnectionID{}, err
	}
	return quic.ConnectionIDFromBytes(b[:]), nil
}

// ConnectionIDLen is steer.IDLen, the same in every generation.
func (g *IDGenerator) ConnectionIDLen() int { return steer.IDLen }
