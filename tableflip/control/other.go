//go:build !linux

package control

import (
	"context"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Server is not supported on this platform (it needs SO_PEERCRED and
// pidfds).
type Server struct{}

// Listen returns tableflip.ErrNotSupported on this platform.
func Listen(ctx context.Context, upg Upgrader, path string, opts Options) (*Server, error) {
	return nil, tableflip.ErrNotSupported
}

// Upgrade returns tableflip.ErrNotSupported on this platform.
func (s *Server) Upgrade(ctx context.Context) (int, bool, error) {
	return 0, false, tableflip.ErrNotSupported
}

// Close does nothing on this platform.
func (s *Server) Close() error { return nil }

// RequestUpgrade returns tableflip.ErrNotSupported on this platform.
func RequestUpgrade(ctx context.Context, path string, from int) (int, error) {
	return 0, tableflip.ErrNotSupported
}

// RequestStatus returns tableflip.ErrNotSupported on this platform.
func RequestStatus(ctx context.Context, path string) (Status, error) {
	return Status{}, tableflip.ErrNotSupported
}

// RequestStop returns tableflip.ErrNotSupported on this platform.
func RequestStop(ctx context.Context, path string) ([]Generation, error) {
	return nil, tableflip.ErrNotSupported
}
