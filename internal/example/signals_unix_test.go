//go:build unix

package example_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tableflip-go/tableflip/internal/example"
	"github.com/tableflip-go/tableflip/tableflip"
)

// timeout bounds every wait; a passing test never reaches it.
const timeout = 60 * time.Second

// TestHandleSignals sends this process the signals: SIGHUP tries an
// upgrade (which fails before Ready, and is logged), SIGTERM stops the
// upgrader and so closes Exit.
func TestHandleSignals(t *testing.T) {
	// The hook runs after the observer has the entry.
	core, logs := observer.New(zap.InfoLevel)
	entries := make(chan zapcore.Entry, 16)
	log := zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		entries <- e
		return nil
	}))
	upg, err := tableflip.New(tableflip.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer upg.Stop()
	stop := example.HandleSignals(log, upg)
	defer stop()

	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, entries, "upgrade failed, still serving")
	for _, e := range logs.FilterMessage("upgrade failed, still serving").All() {
		if err, _ := e.ContextMap()["error"].(string); err != tableflip.ErrNotReady.Error() {
			t.Errorf("the failure is logged with error %q, want %q (an upgrade before Ready)", err, tableflip.ErrNotReady)
		}
	}
	if st := upg.State(); st != tableflip.StateInitial {
		t.Errorf("after SIGHUP before Ready: state %v, want %v", st, tableflip.StateInitial)
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-upg.Exit():
	case <-time.After(timeout):
		t.Fatal("SIGTERM did not close Exit")
	}
	if st := upg.State(); st != tableflip.StateStopped {
		t.Errorf("after SIGTERM: state %v, want %v", st, tableflip.StateStopped)
	}
	stop()
	stop() // idempotent
}

// TestHandleSignalsAfterExit: once Exit is closed the handling ends by
// itself, and stop returns at once.
func TestHandleSignalsAfterExit(t *testing.T) {
	upg, err := tableflip.New(tableflip.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	stop := example.HandleSignals(zap.NewNop(), upg)
	upg.Stop()
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(timeout):
		t.Fatal("stop did not return")
	}
}

// waitEntry waits for an entry with the message msg.
func waitEntry(t *testing.T, entries <-chan zapcore.Entry, msg string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-entries:
			if e.Message == msg {
				return
			}
		case <-deadline:
			t.Fatalf("no log entry %q", msg)
		}
	}
}
