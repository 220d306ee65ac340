package steer

import (
	"crypto/rand"
	"errors"
)

// IDLen is the length of every connection ID this package makes, in every
// generation. Short-header packets do not carry the length of their
// destination connection ID, so a receiver can only find the ID if all
// generations use the same length.
const IDLen = 8

// An ID is laid out as
//
//	[0]    generation tag (the generation number modulo 256)
//	[1:5]  random bits
//	[5:8]  check: the low 24 bits of SipHash-2-4 of [0:5] under the
//	       secret all generations share
//
// The check tells an ID this service made from one a client chose at
// random (a client's first Initial): a random 8-byte ID passes it with
// probability 2^-24.
const (
	randomLen = 4
	checkOff  = 1 + randomLen
)

// ErrShortID is returned by Codec.Generate when dst is shorter than IDLen.
var ErrShortID = errors.New("steer: connection ID buffer shorter than IDLen")

// A Codec makes and reads generation-tagged connection IDs under a secret
// that every generation of a service shares.
type Codec struct {
	k0, k1 uint64
}

// NewCodec returns the codec for key, the secret the generations share.
func NewCodec(key [16]byte) *Codec {
	k0, k1 := sipKey(key)
	return &Codec{k0: k0, k1: k1}
}

// Tag is the generation tag for generation number gen.
func Tag(gen int) uint8 { return uint8(gen) }

// Generate writes a new connection ID tagged with tag into dst[:IDLen].
func (c *Codec) Generate(dst []byte, tag uint8) error {
	if len(dst) < IDLen {
		return ErrShortID
	}
	dst[0] = tag
	rand.Read(dst[1:checkOff]) // crypto/rand.Read never fails
	c.seal(dst[:IDLen])
	return nil
}

func (c *Codec) seal(id []byte) {
	h := sip24short(c.k0, c.k1, id[:checkOff])
	id[checkOff] = byte(h)
	id[checkOff+1] = byte(h >> 8)
	id[checkOff+2] = byte(h >> 16)
}

// Tag returns the generation tag of id, and whether id is one that a
// generation of this service made (right length, check valid).
func (c *Codec) Tag(id []byte) (tag uint8, ok bool) {
	if len(id) != IDLen {
		return 0, false
	}
	h := sip24short(c.k0, c.k1, id[:checkOff])
	if id[checkOff] != byte(h) || id[checkOff+1] != byte(h>>8) || id[checkOff+2] != byte(h>>16) {
		return 0, false
	}
	return id[0], true
}
