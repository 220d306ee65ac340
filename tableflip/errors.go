package tableflip

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors. Every error the package returns wraps one of these or is
// one of the typed errors below, so callers test with errors.Is / errors.As.
var (
	// ErrNotSupported is returned where the platform cannot pass file
	// descriptors between processes (Windows).
	ErrNotSupported = errors.New("tableflip: not supported on this platform")
	// ErrNotReady is returned by Upgrade before Ready has been called.
	ErrNotReady = errors.New("tableflip: not ready")
	// ErrAlreadyReady is returned by a second call to Ready.
	ErrAlreadyReady = errors.New("tableflip: already ready")
	// ErrUpgradeInProgress is returned by Upgrade while another upgrade runs.
	ErrUpgradeInProgress = errors.New("tableflip: upgrade in progress")
	// ErrUpgraded is returned by Upgrade after a successful upgrade: this
	// generation is exiting and may not start another.
	ErrUpgraded = errors.New("tableflip: already upgraded, this generation is exiting")
	// ErrStopped is returned by every call after Stop.
	ErrStopped = errors.New("tableflip: stopped")
	// ErrNotInherited is returned by Inherit when the parent passed no file
	// under the asked transport and key.
	ErrNotInherited = errors.New("tableflip: not inherited")
	// ErrDuplicate is returned by Pass and Register for a name already
	// taken, and by Inherit for a file already claimed.
	ErrDuplicate = errors.New("tableflip: duplicate")
	// ErrProtocol is wrapped by every error about malformed, truncated or
	// hostile handoff input.
	ErrProtocol = errors.New("tableflip: handoff protocol error")
	// ErrUnknownTransport is returned for an address whose scheme no
	// registered transport handles.
	ErrUnknownTransport = errors.New("tableflip: unknown transport")
	// ErrFewDescriptors is returned by the Ready of a new generation that
	// has fewer than 16 file descriptors free under its RLIMIT_NOFILE: it
	// would take over and then fail to accept. Its parent serves on.
	ErrFewDescriptors = errors.New("tableflip: too few file descriptors left")
)

// versionError reports a child and a parent that speak different versions
// of the handoff protocol. Both sides refuse the handoff with it.
type versionError struct {
	Ours, Theirs uint16
}

func (e *versionError) Error() string {
	return fmt.Sprintf("tableflip: handoff protocol version mismatch: this side speaks %d, the other side speaks %d", e.Ours, e.Theirs)
}

// Unwrap makes errors.Is(err, ErrProtocol) true for a version mismatch.
func (e *versionError) Unwrap() error { return ErrProtocol }

// ChildError is returned by Upgrade when the new generation did not become
// ready, or did not even start. The old generation keeps serving.
type ChildError struct {
	// Pid of the child process, 0 when none started (a Prepare hook or
	// Options.Next failed, or the binary could not be started: Err says
	// why).
	Pid int
	// Reason is what the child itself reported through Fail or a failed
	// New/Ready, empty when it did not say.
	Reason string
	// ExitStatus is the child's exit status when it exited on its own
	// (-1 when it was killed by a signal or did not exit on its own).
	ExitStatus int
	// Signal is the signal that killed the child, 0 when it exited on
	// its own. After a timeout it is this generation's own SIGTERM or
	// SIGKILL, which the message leaves out.
	Signal syscall.Signal
	// TimedOut is true when the child did not answer before the upgrade
	// timeout and was killed.
	TimedOut bool
	// Err is the underlying cause (a protocol or I/O error, the context's
	// cause), if any.
	Err error

	silent bool // timed out before the child's hello
}

func (e *ChildError) Error() string {
	if e.Pid == 0 {
		return fmt.Sprintf("tableflip: next generation not started: %v", e.Err)
	}
	msg := fmt.Sprintf("tableflip: child %d failed", e.Pid)
	switch {
	case e.Reason != "":
		msg += ": " + e.Reason
	case e.TimedOut && e.silent:
		msg += ": not ready before the upgrade timeout, and it never started the handoff (did the new binary call tableflip.New?)"
	case e.TimedOut:
		msg += ": not ready before the upgrade timeout"
	}
	switch {
	case e.ExitStatus >= 0:
		msg += fmt.Sprintf(" (exit status %d)", e.ExitStatus)
	case e.Signal != 0 && !e.TimedOut:
		msg += " (killed by signal " + signalName(e.Signal) + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ChildError) Unwrap() error { return e.Err }
