//go:build unix

package tableflip

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// fdReserve is how many descriptors a new generation must have free, under
// its RLIMIT_NOFILE, to answer ready. Below it the generation would commit
// and then fail at once: examples/http at a limit of 14 had 1 free after
// Ready, served one connection at a time, refused the rest with EMFILE, and
// could not upgrade again (a socketpair, the exec's own pipe: 4
// descriptors). 16 leaves room for that upgrade and a dozen connections; a
// service given so few is misconfigured, and its parent serving on is
// better than it taking over. A limit that low is never the default: Go
// raises the soft limit to the hard one, 524288 under systemd.
const fdReserve = 16

// checkFdReserve fails with ErrFewDescriptors when fewer than fdReserve
// descriptors can be opened. It counts by duplicating hc's socket until
// the kernel refuses or fdReserve are open, then closes the duplicates:
// that is exact, wherever the free numbers are, and costs 32 system calls.
func checkFdReserve(hc *handoffConn) error {
	rc, err := hc.c.SyscallConn()
	if err != nil {
		return nil // the handoff fails on its own, more clearly
	}
	var (
		free   int
		dupErr error
	)
	rc.Control(func(fd uintptr) {
		dups := make([]int, 0, fdReserve)
		defer func() {
			for _, d := range dups {
				unix.Close(d)
			}
		}()
		for len(dups) < fdReserve {
			d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				dupErr = err
				break
			}
			dups = append(dups, d)
		}
		free = len(dups)
	})
	if free >= fdReserve {
		return nil
	}
	if !errors.Is(dupErr, unix.EMFILE) && !errors.Is(dupErr, unix.ENFILE) {
		return nil // not a shortage this check knows how to judge
	}
	limit := "RLIMIT_NOFILE"
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		limit = fmt.Sprintf("the limit of %d (RLIMIT_NOFILE)", rl.Cur)
	}
	if errors.Is(dupErr, unix.ENFILE) {
		limit = "the system's limit (ENFILE)"
	}
	return fmt.Errorf("%w: %d free under %s, and a new generation needs %d to accept connections and upgrade again: raise the limit (LimitNOFILE= under systemd, ulimit -n)",
		ErrFewDescriptors, free, limit, fdReserve)
}
