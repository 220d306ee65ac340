package loadtest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// waitCaught waits until pid has a handler for sig, read from SigCgt in
// /proc/<pid>/status. The kernel sends no event for that, so this polls,
// with a backoff from 1ms to 20ms, until exited is closed or ctx ends.
func waitCaught(ctx context.Context, pid int, sig syscall.Signal, exited <-chan struct{}) error {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	delay := time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-exited:
			return fmt.Errorf("loadtest: pid %d exited before it handled %v", pid, sig)
		case <-ctx.Done():
			return fmt.Errorf("loadtest: pid %d does not handle %v: %w", pid, sig, context.Cause(ctx))
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("loadtest: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if mask, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				m, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
				if err == nil && m&(1<<(uint(sig)-1)) != 0 {
					return nil
				}
			}
		}
		t.Reset(delay)
		delay = min(2*delay, 20*time.Millisecond)
	}
}
