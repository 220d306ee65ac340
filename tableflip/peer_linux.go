package tableflip

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// checkPeerIsParent refuses a socket whose other end is not held by our
// parent: a stray TABLEFLIP_HANDOFF in the environment must not make us
// talk to whatever happens to be open at that fd.
func checkPeerIsParent(fd int) error {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return fmt.Errorf("%w: %s=%d but fd %d is not a unix socket: %w", ErrProtocol, handoffEnv, fd, fd, err)
	}
	if int(cred.Pid) != os.Getppid() {
		if unix.Kill(int(cred.Pid), 0) == unix.ESRCH {
			// The socket's creator is gone and we were reparented:
			// our parent died during the handoff.
			return fmt.Errorf("%w: parent %d died during the handoff (we now belong to pid %d)", ErrProtocol, cred.Pid, os.Getppid())
		}
		return fmt.Errorf("%w: %s=%d but fd %d belongs to pid %d, not to our parent %d (stray environment variable?)", ErrProtocol, handoffEnv, fd, fd, cred.Pid, os.Getppid())
	}
	return nil
}
