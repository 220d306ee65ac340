//go:build !linux

package loadtest

import (
	"context"
	"syscall"
)

// waitCaught cannot tell elsewhere; wrk's SIGINT may then come too early.
func waitCaught(ctx context.Context, pid int, sig syscall.Signal, exited <-chan struct{}) error {
	return nil
}
