package tlstransport

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"
)

// Defaults of TicketOptions.
const (
	DefaultTicketRotation = time.Hour
	DefaultTicketLifetime = 24 * time.Hour
)

// maxTicketKeys bounds the key ring, so that the keys always fit the
// metadata of one handoff record (40 bytes a key).
const maxTicketKeys = 1024

// ticketMetaVersion is the layout of the session-ticket keys sent to the
// next generation. A generation that does not understand the layout starts
// with fresh keys (clients then fall back to a full handshake once).
const ticketMetaVersion = 1

// TicketOptions configure the rotation of session-ticket keys. The zero
// value is usable.
//
// The newest key encrypts new tickets; every key decrypts until its
// lifetime ends. A key is replaced as the encrypting key once it is
// Rotation old, so a ticket stays resumable for at least
// Lifetime-Rotation after it was issued. Keys are created with their
// creation time and keep it across upgrades, so a key's lifetime does not
// restart in a new generation.
type TicketOptions struct {
	// Rotation is how long a key encrypts new tickets. Zero means
	// DefaultTicketRotation (one hour).
	Rotation time.Duration
	// Lifetime is how long a key decrypts tickets after it was created.
	// It must be at least Rotation and at most 1024 rotations. Zero means
	// DefaultTicketLifetime (24 hours).
	Lifetime time.Duration
	// Now is the clock, for tests. Nil means time.Now.
	Now func() time.Time
	// Rand is the source of new keys. Nil means crypto/rand.
	Rand io.Reader
}

func (o TicketOptions) withDefaults() (TicketOptions, error) {
	if o.Rotation == 0 {
		o.Rotation = DefaultTicketRotation
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultTicketLifetime
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	switch {
	case o.Rotation < 0 || o.Lifetime < 0:
		return o, fmt.Errorf("tlstransport: negative ticket rotation %v or lifetime %v", o.Rotation, o.Lifetime)
	case o.Lifetime < o.Rotation:
		return o, fmt.Errorf("tlstransport: ticket lifetime %v is shorter than the rotation %v", o.Lifetime, o.Rotation)
	case o.Lifetime/o.Rotation >= maxTicketKeys:
		return o, fmt.Errorf("tlstransport: ticket lifetime %v keeps more than %d keys of rotation %v", o.Lifetime, maxTicketKeys, o.Rotation)
	}
	return o, nil
}

// TicketKey describes one session-ticket key without revealing it.
type TicketKey struct {
	// ID is a short fingerprint of the key (hex of the first 8 bytes of
	// its SHA-256).
	ID string
	// Created is when the key was made, by whichever generation made it.
	Created time.Time
}

type ticketKey struct {
	key     [32]byte
	created time.Time
}

func (k ticketKey) info() TicketKey {
	sum := sha256.Sum256(k.key[:])
	return TicketKey{ID: hex.EncodeToString(sum[:8]), Created: k.created}
}

// ticketRing owns the session-ticket keys of one listener and installs them
// in its tls.Config. Rotation is lazy: it happens when a handshake starts
// (GetConfigForClient runs before the keys are used) or when the keys are
// sent to the next generation, so an idle ring needs no goroutine.
type ticketRing struct {
	opts TicketOptions
	cfg  *tls.Config

	mu   sync.Mutex
	keys []ticketKey // newest first
	// frozen stops rotation while an upgrade is in flight: the child has
	// the keys as they were at Prepare, and the tickets this generation
	// issues until it exits must be ones the child can decrypt.
	frozen bool
}

func newTicketRing(opts TicketOptions, cfg *tls.Config, inherited []ticketKey) (*ticketRing, error) {
	r := &ticketRing{opts: opts, cfg: cfg, keys: inherited}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.rotateLocked(true); err != nil {
		return nil, err
	}
	return r, nil
}

// rotate makes a new key if the newest is due, drops expired ones, and
// installs the result. It returns an error only if no randomness could be
// read, in which case the current keys stay.
func (r *ticketRing) rotate() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return nil
	}
	return r.rotateLocked(false)
}

func (r *ticketRing) rotateLocked(force bool) error {
	now := r.opts.Now()
	keys := r.keys[:0:0]
	for _, k := range r.keys {
		if now.Sub(k.created) < r.opts.Lifetime {
			keys = append(keys, k)
		}
	}
	changed := len(keys) != len(r.keys)
	if len(keys) == 0 || now.Sub(keys[0].created) >= r.opts.Rotation {
		var k ticketKey
		if _, err := io.ReadFull(r.opts.Rand, k.key[:]); err != nil {
			return fmt.Errorf("tlstransport: new session-ticket key: %w", err)
		}
		k.created = now
		keys = append([]ticketKey{k}, keys...)
		changed = true
	}
	if len(keys) > maxTicketKeys {
		keys = keys[:maxTicketKeys]
	}
	r.keys = keys
	if changed || force {
		raw := make([][32]byte, len(keys))
		for i, k := range keys {
			raw[i] = k.key
		}
		r.cfg.SetSessionTicketKeys(raw)
	}
	return nil
}

func (r *ticketRing) freeze(on bool) {
	r.mu.Lock()
	r.frozen = on
	r.mu.Unlock()
}

// snapshot rotates if due, then freezes the ring and encodes its keys for
// the next generation.
func (r *ticketRing) snapshot() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.frozen {
		if err := r.rotateLocked(false); err != nil {
			return nil, err
		}
	}
	r.frozen = true
	return encodeTicketKeys(r.keys), nil
}

func (r *ticketRing) encode() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return encodeTicketKeys(r.keys)
}

func (r *ticketRing) info() []TicketKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TicketKey, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.info()
	}
	return out
}

// encodeTicketKeys lays keys out as: version (1 byte), count (2 bytes), and
// per key its creation time (8 bytes, Unix nanoseconds) and the key
// (32 bytes), big endian.
func encodeTicketKeys(keys []ticketKey) []byte {
	b := make([]byte, 0, 3+40*len(keys))
	b = append(b, ticketMetaVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(keys)))
	for _, k := range keys {
		b = binary.BigEndian.AppendUint64(b, uint64(k.created.UnixNano()))
		b = append(b, k.key[:]...)
	}
	return b
}

func decodeTicketKeys(b []byte) ([]ticketKey, error) {
	if len(b) < 3 {
		return nil, fmt.Errorf("tlstransport: session-ticket keys: %d bytes, want at least 3", len(b))
	}
	if b[0] != ticketMetaVersion {
		return nil, fmt.Errorf("tlstransport: session-ticket keys: layout version %d, this generation reads %d", b[0], ticketMetaVersion)
	}
	n := int(binary.BigEndian.Uint16(b[1:3]))
	if n > maxTicketKeys {
		return nil, fmt.Errorf("tlstransport: session-ticket keys: %d keys, the limit is %d", n, maxTicketKeys)
	}
	b = b[3:]
	if len(b) != 40*n {
		return nil, fmt.Errorf("tlstransport: session-ticket keys: %d bytes for %d keys, want %d", len(b), n, 40*n)
	}
	keys := make([]ticketKey, n)
	for i := range keys {
		keys[i].created = time.Unix(0, int64(binary.BigEndian.Uint64(b)))
		copy(keys[i].key[:], b[8:40])
		b = b[40:]
	}
	return keys, nil
}
