//go:build !linux

package loadtest

import (
	"context"
	"os/exec"
	"syscall"
)

// Server drives a running server that upgrades itself on SIGHUP. It is
// Linux only; elsewhere every method returns ErrNotSupported.
type Server struct{}

// StartServer returns ErrNotSupported on this platform.
func StartServer(ctx context.Context, cmd *exec.Cmd, pidFile string) (*Server, error) {
	return nil, ErrNotSupported
}

// Attach returns ErrNotSupported on this platform.
func Attach(ctx context.Context, pid int, pidFile string) (*Server, error) {
	return nil, ErrNotSupported
}

// PID is 0 on this platform.
func (s *Server) PID() int { return 0 }

// Generations is empty on this platform.
func (s *Server) Generations() []int { return nil }

// Upgrade returns ErrNotSupported on this platform.
func (s *Server) Upgrade(ctx context.Context) (Upgrade, error) { return Upgrade{}, ErrNotSupported }

// Stop returns ErrNotSupported on this platform.
func (s *Server) Stop(ctx context.Context) (Exit, error) { return Exit{}, ErrNotSupported }

// Signal returns ErrNotSupported on this platform.
func (s *Server) Signal(ctx context.Context, sig syscall.Signal) (Exit, error) {
	return Exit{}, ErrNotSupported
}

// Close does nothing on this platform.
func (s *Server) Close() error { return nil }

// ListenerInode returns ErrNotSupported on this platform.
func ListenerInode(network, address string) (uint64, error) { return 0, ErrNotSupported }

// HoldsSocket returns ErrNotSupported on this platform.
func HoldsSocket(pid int, inode uint64) (bool, error) { return false, ErrNotSupported }

// Listener is a listening socket that a process holds.
type Listener struct {
	Network string
	Addr    string
	Inode   uint64
}

// Listeners returns ErrNotSupported on this platform.
func Listeners(pid int) ([]Listener, error) { return nil, ErrNotSupported }
