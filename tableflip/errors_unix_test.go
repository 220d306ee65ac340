//go:build unix

package tableflip_test

import (
	"syscall"
	"testing"

	"github.com/tableflip-go/tableflip/tableflip"
)

// TestChildErrorSaysHowTheChildEnded: the message gives the exit status of
// a child that exited, the signal of one that was killed, and neither for
// one this generation killed after the upgrade timeout.
func TestChildErrorSaysHowTheChildEnded(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  tableflip.ChildError
		want string
	}{
		{"exited", tableflip.ChildError{Pid: 7, ExitStatus: 3}, "tableflip: child 7 failed (exit status 3)"},
		{"killed", tableflip.ChildError{Pid: 7, ExitStatus: -1, Signal: syscall.SIGKILL}, "tableflip: child 7 failed (killed by signal SIGKILL: killed)"},
		{"reason and signal", tableflip.ChildError{Pid: 7, Reason: "bad config", ExitStatus: -1, Signal: syscall.SIGABRT}, "tableflip: child 7 failed: bad config (killed by signal SIGABRT: aborted)"},
		{"timed out", tableflip.ChildError{Pid: 7, ExitStatus: -1, Signal: syscall.SIGTERM, TimedOut: true}, "tableflip: child 7 failed: not ready before the upgrade timeout"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
