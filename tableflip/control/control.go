package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tableflip-go/tableflip/tableflip"
)

// DefaultMode is the permission of a control socket file: only its owner
// (the service's user) may connect. root may always connect.
const DefaultMode os.FileMode = 0o600

// Errors a client gets. Each wraps one of these, or is an *UpgradeError.
var (
	// ErrRefused: the service refused the request because the caller's uid
	// is neither the service's nor root's (checked with SO_PEERCRED).
	ErrRefused = errors.New("control: refused")
	// ErrNotMain: the request named a generation (Upgrade's from) that is
	// not the one serving, nor the one this generation was upgraded from.
	ErrNotMain = errors.New("control: not the serving generation")
	// ErrBadRequest: the service could not read the request, or the client
	// the answer.
	ErrBadRequest = errors.New("control: bad request")
)

// Upgrader is the part of *tableflip.Upgrader a Server uses.
type Upgrader interface {
	tableflip.Fds
	Upgrade(ctx context.Context) (pid int, err error)
	HasParent() bool
}

var _ Upgrader = (*tableflip.Upgrader)(nil)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Mode is the socket file's permission; zero means DefaultMode. It is
	// applied by the first generation only (later ones inherit the socket).
	// Whatever the mode, a connection from another uid than the service's
	// or root's is refused.
	Mode os.FileMode
	// Stop is called for a stop request, after the answer is sent. Nil
	// means: send SIGTERM to this process, which the program already
	// treats as "stop and drain".
	Stop func()
	// UpgradeTimeout bounds an upgrade started by a request, in addition
	// to tableflip.Options.UpgradeTimeout. Zero means no extra bound.
	UpgradeTimeout time.Duration
}

// UpgradeError is a failed upgrade, as the client sees it.
type UpgradeError struct {
	// Message is the service's error message for the failed upgrade.
	Message string
	// Reason is what the new generation itself reported (ChildError.Reason),
	// empty when it did not say.
	Reason string
	// ChildPid, ExitStatus and TimedOut are those of the ChildError, when
	// the upgrade failed in the child.
	ChildPid   int
	ExitStatus int
	TimedOut   bool
}

func (e *UpgradeError) Error() string { return "control: upgrade failed: " + e.Message }

// Generation is one running generation of the service.
type Generation struct {
	Pid        int `json:"pid"`
	Generation int `json:"generation"`
}

// Status is what a status request returns.
type Status struct {
	// Serving is the generation that answered: the one that serves.
	Serving Generation `json:"serving"`
	// Draining lists older generations still running (draining).
	Draining []Generation `json:"draining,omitempty"`
	// Upgrading is true while an upgrade is in progress.
	Upgrading bool `json:"upgrading"`
}

// request and response are the wire format: one JSON object per line.
type request struct {
	Op   string `json:"op"` // "upgrade", "stop", "status"
	From int    `json:"from,omitempty"`
}

type response struct {
	OK         bool         `json:"ok"`
	Error      string       `json:"error,omitempty"`
	Kind       string       `json:"kind,omitempty"` // "refused", "not-main", "bad-request", "upgrade", "retry"
	Pid        int          `json:"pid,omitempty"`
	Generation int          `json:"generation,omitempty"`
	Joined     bool         `json:"joined,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	ChildPid   int          `json:"child_pid,omitempty"`
	ExitStatus int          `json:"exit_status,omitempty"`
	TimedOut   bool         `json:"timed_out,omitempty"`
	Status     *Status      `json:"status,omitempty"`
	Exiting    []Generation `json:"exiting,omitempty"` // stop: one per passed pidfd, in order
}

func (r *response) err() error {
	if r.OK {
		return nil
	}
	switch r.Kind {
	case "refused":
		return fmt.Errorf("%w: %s", ErrRefused, r.Error)
	case "not-main":
		return fmt.Errorf("%w: %s", ErrNotMain, r.Error)
	case "upgrade":
		return &UpgradeError{Message: r.Error, Reason: r.Reason, ChildPid: r.ChildPid, ExitStatus: r.ExitStatus, TimedOut: r.TimedOut}
	default:
		return fmt.Errorf("%w: %s", ErrBadRequest, r.Error)
	}
}

func upgradeResponse(pid, gen int, err error) response {
	if err == nil {
		return response{OK: true, Pid: pid, Generation: gen}
	}
	r := response{Kind: "upgrade", Error: err.Error(), ExitStatus: -1}
	var ce *tableflip.ChildError
	if errors.As(err, &ce) {
		r.Reason, r.ChildPid, r.ExitStatus, r.TimedOut = ce.Reason, ce.Pid, ce.ExitStatus, ce.TimedOut
	}
	return r
}
