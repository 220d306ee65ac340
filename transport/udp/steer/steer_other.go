//go:build !linux

package steer

import (
	"context"
	"net"
	"time"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Conn is the steering socket. Off Linux steering is not implemented:
// Listen returns ErrNotSupported, and a service that wants its UDP socket
// shared as before uses the udp package directly.
type Conn struct{}

// Listen returns ErrNotSupported off Linux.
func Listen(ctx context.Context, fds tableflip.Fds, network, address string, cfg *Config) (*Conn, error) {
	return nil, ErrNotSupported
}

// Codec is nil off Linux.
func (c *Conn) Codec() *Codec { return nil }

// Tag is 0 off Linux.
func (c *Conn) Tag() uint8 { return 0 }

// Secret is zero off Linux.
func (c *Conn) Secret() [SecretLen]byte { return [SecretLen]byte{} }

// UDPConn is nil off Linux.
func (c *Conn) UDPConn() *net.UDPConn { return nil }

// Stats is zero off Linux.
func (c *Conn) Stats() Stats { return Stats{} }

// HandedOver is false off Linux.
func (c *Conn) HandedOver() bool { return false }

// SetReadDeadline returns ErrNotSupported off Linux.
func (c *Conn) SetReadDeadline(t time.Time) error { return ErrNotSupported }

// ReadBatch returns ErrNotSupported off Linux.
func (c *Conn) ReadBatch(ms []Message) (int, error) { return 0, ErrNotSupported }

// Close does nothing off Linux.
func (c *Conn) Close() error { return nil }
