//go:build unix

package tableflip

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// exitSignal is the signal that ended a process, 0 when it exited by
// itself or its state is unknown (ps nil: see exitStatus).
func exitSignal(ps *os.ProcessState) syscall.Signal {
	if ps == nil {
		return 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// signalName names sig as operators write it, and as the kernel says it:
// "SIGSEGV: segmentation fault".
func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name + ": " + sig.String()
	}
	return sig.String()
}
