//go:build unix

package drain_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
)

// fakeUpgrader is a stub for the unit tests of Run's order and its signal
// handling; the examples' tests run Run between real processes. Its
// Upgrade blocks until the test answers on release.
type fakeUpgrader struct {
	readyErr error
	ready    chan struct{} // closed by Ready
	upgrades atomic.Int32
	started  chan struct{} // one send per Upgrade call
	release  chan error    // the result of the Upgrade in progress
	exit     chan struct{}
	stopOnce sync.Once
}

func newFake(readyErr error) *fakeUpgrader {
	return &fakeUpgrader{
		readyErr: readyErr,
		ready:    make(chan struct{}),
		started:  make(chan struct{}, 16),
		release:  make(chan error),
		exit:     make(chan struct{}),
	}
}

func (f *fakeUpgrader) Ready() error {
	close(f.ready)
	return f.readyErr
}

func (f *fakeUpgrader) Upgrade(ctx context.Context) (int, error) {
	f.upgrades.Add(1)
	f.started <- struct{}{}
	select {
	case err := <-f.release:
		return 0, err
	case <-f.exit:
		return 0, tableflip.ErrStopped
	}
}

func (f *fakeUpgrader) Exit() <-chan struct{} { return f.exit }
func (f *fakeUpgrader) Stop()                 { f.stopOnce.Do(func() { close(f.exit) }) }

// entryLogger returns a logger whose entries the test can wait for.
func entryLogger() (*zap.Logger, *observer.ObservedLogs, <-chan zapcore.Entry) {
	core, logs := observer.New(zap.DebugLevel)
	entries := make(chan zapcore.Entry, 64)
	return zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		entries <- e
		return nil
	})), logs, entries
}

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
			t.Fatalf("no log entry %q within %v", msg, timeout)
		}
	}
}

func kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
}

// TestRunServesNothingWhenReadyFails: a generation whose Ready fails
// accepts nothing, so the connections in the shared socket's backlog stay
// for the previous generation.
func TestRunServesNothingWhenReadyFails(t *testing.T) {
	errDisk := errors.New("no space left on the PID file's disk")
	upg := newFake(errDisk)
	var served, drained atomic.Bool
	err := drain.Run(upg, func() error {
		served.Store(true)
		return nil
	}, func(context.Context) error {
		drained.Store(true)
		return nil
	}, drain.RunOptions{})
	if !errors.Is(err, errDisk) {
		t.Errorf("Run = %v, want Ready's error", err)
	}
	if served.Load() || drained.Load() {
		t.Errorf("served %v, drained %v after Ready failed; want neither", served.Load(), drained.Load())
	}
}

// TestRunSignals: serve starts only after Ready; SIGHUPs during an
// upgrade are coalesced into it and not logged as failures; a failed
// upgrade is logged once and the generation serves on; SIGTERM stops, and
// the drain then runs with a deadline, and Run returns once serve has.
func TestRunSignals(t *testing.T) {
	log, logs, entries := entryLogger()
	upg := newFake(nil)
	serving := make(chan struct{})
	stopServe := make(chan struct{})
	var drainDeadline time.Time
	ran := make(chan error, 1)
	go func() {
		ran <- drain.Run(upg, func() error {
			select {
			case <-upg.ready:
			default:
				t.Error("serve called before Ready")
			}
			close(serving)
			<-stopServe
			return nil
		}, func(ctx context.Context) error {
			drainDeadline, _ = ctx.Deadline()
			close(stopServe)
			return nil
		}, drain.RunOptions{Logger: log, Timeout: time.Hour})
	}()
	// Ready is called after the signals are handled: from here on they
	// are safe to send.
	waitFor(t, upg.ready, "Ready")
	waitFor(t, serving, "serve")

	kill(t, syscall.SIGHUP)
	recv(t, upg.started, "the upgrade of the first SIGHUP")
	for range 3 {
		kill(t, syscall.SIGHUP)
		waitEntry(t, entries, "upgrade in progress, signal coalesced into it")
	}
	errChild := errors.New("the child exited with status 1")
	upg.release <- errChild
	waitEntry(t, entries, "upgrade failed, still serving")
	if n := upg.upgrades.Load(); n != 1 {
		t.Errorf("4 SIGHUPs during one upgrade started %d upgrades, want 1", n)
	}
	failed := logs.FilterMessage("upgrade failed, still serving").All()
	if len(failed) != 1 || failed[0].Level != zapcore.ErrorLevel || failed[0].ContextMap()["error"] != errChild.Error() {
		t.Errorf("failure entries %v, want one error-level entry with %q", failed, errChild)
	}

	// The next SIGHUP starts a new upgrade, which SIGTERM ends.
	kill(t, syscall.SIGHUP)
	recv(t, upg.started, "the upgrade of the SIGHUP after the failure")
	kill(t, syscall.SIGTERM)
	if err := recv(t, ran, "Run"); err != nil {
		t.Fatalf("Run = %v after SIGTERM, want nil", err)
	}
	if d := time.Until(drainDeadline); d < 50*time.Minute || d > time.Hour {
		t.Errorf("the drain's context ends in %v, want the 1h of RunOptions.Timeout", d)
	}
	if n := logs.FilterMessage("upgrade failed, still serving").Len(); n != 1 {
		t.Errorf("%d failure entries, want 1 (the upgrade that SIGTERM ended is no failure)", n)
	}
	if logs.FilterMessage("drained").Len() != 1 {
		t.Errorf("no \"drained\" entry: %v", logs.All())
	}
}

// TestRunServeFails: a serve that fails before Exit makes Run drain and
// return its error.
func TestRunServeFails(t *testing.T) {
	upg := newFake(nil)
	errAccept := errors.New("accept: too many open files")
	var drained atomic.Bool
	err := drain.Run(upg, func() error { return errAccept }, func(context.Context) error {
		drained.Store(true)
		return nil
	}, drain.RunOptions{})
	if !errors.Is(err, errAccept) {
		t.Errorf("Run = %v, want serve's error", err)
	}
	if !drained.Load() {
		t.Error("Run did not drain after serve failed")
	}
}

// TestRunDrainFails: the drain's error is Run's.
func TestRunDrainFails(t *testing.T) {
	upg := newFake(nil)
	upg.Stop()
	errCut := &drain.IncompleteError{Open: 1, Err: context.DeadlineExceeded}
	err := drain.Run(upg, func() error { return nil }, func(context.Context) error { return errCut }, drain.RunOptions{})
	if ie := (*drain.IncompleteError)(nil); !errors.As(err, &ie) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want the drain's *IncompleteError", err)
	}
}

// resumingFake is a stub whose handovers and take-backs the test drives.
type resumingFake struct {
	mu            sync.Mutex
	exit, resumed chan struct{}
	resumedCalled atomic.Bool
	stopOnce      sync.Once
	stopped       chan struct{}
}

func newResumingFake() *resumingFake {
	return &resumingFake{exit: make(chan struct{}), resumed: make(chan struct{}), stopped: make(chan struct{})}
}

func (f *resumingFake) Ready() error { return nil }
func (f *resumingFake) Upgrade(context.Context) (int, error) {
	return 0, errors.New("not in this test")
}
func (f *resumingFake) Stop()                 { f.stopOnce.Do(func() { close(f.stopped); f.handOver() }) }
func (f *resumingFake) Exit() <-chan struct{} { f.mu.Lock(); defer f.mu.Unlock(); return f.exit }
func (f *resumingFake) Resumed() <-chan struct{} {
	f.resumedCalled.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resumed
}

// handOver is what the upgrader does at a handover or Stop: Resumed gets
// a new channel for it, and Exit closes.
func (f *resumingFake) handOver() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.exit:
	default:
		f.resumed = make(chan struct{})
		close(f.exit)
	}
}

// takeBack is what the upgrader does when the successor dies: a new Exit,
// and the handover's Resumed closed.
func (f *resumingFake) takeBack() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.resumed)
	f.exit = make(chan struct{})
}

// TestRunResumes: with RunOptions.Resume, a take-back during the drain
// makes Run serve again with the pair Resume returns, while the first
// drain finishes; Run returns once every drain has.
func TestRunResumes(t *testing.T) {
	upg := newResumingFake()
	first, second := make(chan struct{}), make(chan struct{})
	drainRelease := make(chan struct{})
	drainStarted := make(chan struct{})
	var drains atomic.Int32
	ran := make(chan error, 1)
	go func() {
		ran <- drain.Run(upg, func() error {
			close(first)
			<-drainStarted // as a Serve returns once its listener is closed
			return nil
		}, func(context.Context) error {
			close(drainStarted)
			<-drainRelease
			drains.Add(1)
			return nil
		}, drain.RunOptions{Resume: func() (func() error, func(context.Context) error, error) {
			return func() error {
					close(second)
					<-upg.stopped
					return nil
				}, func(context.Context) error {
					drains.Add(1)
					return nil
				}, nil
		}})
	}()
	recv(t, first, "the first serve")
	if !upg.resumedCalled.Load() {
		t.Fatal("Run did not call Resumed: the take-back stays off")
	}
	upg.handOver()
	recv(t, drainStarted, "the first drain")
	upg.takeBack()
	recv(t, second, "the second serve, after the take-back")
	close(drainRelease)
	upg.Stop()
	if err := recv(t, ran, "Run to return"); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := drains.Load(); n != 2 {
		t.Errorf("%d drains ran, want 2", n)
	}
}
