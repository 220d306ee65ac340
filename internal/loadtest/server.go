package loadtest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotSupported is returned by the process driver (StartServer, Attach)
// and the socket helpers on platforms other than Linux: they use pidfds,
// inotify and /proc.
var ErrNotSupported = errors.New("loadtest: not supported on this platform (Linux only)")

// Upgrade is one upgrade as Server.Upgrade saw it.
type Upgrade struct {
	// OldPID served before, NewPID after.
	OldPID, NewPID int
	// Latency is the time from sending SIGHUP to the pid file naming the
	// new generation (which tableflip writes when the new generation is
	// ready, just before the old one is told to exit).
	Latency time.Duration
	// Exited is the time from sending SIGHUP to the old generation's exit,
	// its drain included.
	Exited time.Duration
	// OldExit is how the old generation exited.
	OldExit Exit
}

// Exit is how one generation ended.
type Exit struct {
	PID int
	// Code is the exit status; -1 when the process was killed by a signal
	// (see Signal) or when it was not reaped by this process (see Reaped).
	Code int
	// Signal is the signal that killed the process, if one did.
	Signal syscall.Signal
	// Reaped is true when this process reaped it and so knows Code.
	// Generations after the first are reparented to this process only
	// because StartServer and Attach make it a child subreaper.
	Reaped bool
}

func (e Exit) String() string {
	switch {
	case !e.Reaped:
		return fmt.Sprintf("pid %d exited (status unknown: not our child)", e.PID)
	case e.Signal != 0:
		return fmt.Sprintf("pid %d killed by %v", e.PID, e.Signal)
	}
	return fmt.Sprintf("pid %d exited with status %d", e.PID, e.Code)
}

// ErrExited is wrapped by the errors of StartServer and Server.Upgrade when
// the serving generation exited instead of doing what they wait for.
var ErrExited = errors.New("loadtest: the server exited")

// ReadPIDFile returns the pid written in path, 0 when the file is absent.
func ReadPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("loadtest: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("loadtest: pid file %s holds %q", path, b)
	}
	return pid, nil
}
