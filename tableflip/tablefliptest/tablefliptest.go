// Package tablefliptest provides an Upgrader that never upgrades, for unit
// tests and for platforms where tableflip.New returns ErrNotSupported
// (Windows). It has the method set of *tableflip.Upgrader, so code written
// against tableflip.Interface (or tableflip.Fds, for transports) runs on it
// unchanged: listeners are created fresh, never inherited, and Upgrade
// returns tableflip.ErrNotSupported.
package tablefliptest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

var (
	_ tableflip.Interface = (*Upgrader)(nil)
	_ tableflip.Interface = (*tableflip.Upgrader)(nil)
)

// Upgrader is a tableflip.Interface that never upgrades. The zero value is
// not usable; create one with New.
type Upgrader struct {
	log *zap.Logger

	mu       sync.Mutex
	state    tableflip.State
	hooks    map[int]tableflip.Hooks
	nextHook int
	passed   map[string]bool
	exit     chan struct{}
}

// New returns an Upgrader in the initial state. A nil logger means none.
func New(log *zap.Logger) *Upgrader {
	if log == nil {
		log = zap.NewNop()
	}
	return &Upgrader{log: log, hooks: map[int]tableflip.Hooks{}, passed: map[string]bool{}, exit: make(chan struct{})}
}

// Inherit always reports that nothing was inherited.
func (u *Upgrader) Inherit(transport, key string) (*os.File, []byte, error) {
	return nil, nil, fmt.Errorf("%w: %s %q (tablefliptest never has a parent)", tableflip.ErrNotInherited, transport, key)
}

// Pass records the name, so that passing it twice is an error as with the
// real Upgrader, and keeps no file.
func (u *Upgrader) Pass(transport, key string, c syscall.Conn, meta []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state == tableflip.StateStopped {
		return tableflip.ErrStopped
	}
	name := transport + "\x00" + key
	if u.passed[name] {
		return fmt.Errorf("%w: %s %q already passed", tableflip.ErrDuplicate, transport, key)
	}
	u.passed[name] = true
	return nil
}

// Forget forgets the name.
func (u *Upgrader) Forget(transport, key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.passed, transport+"\x00"+key)
}

// AddHooks registers h. Ready and FinalStop hooks run as with the real
// Upgrader; Prepare and Done never run, since no upgrade happens.
func (u *Upgrader) AddHooks(h tableflip.Hooks) (remove func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	id := u.nextHook
	u.nextHook++
	u.hooks[id] = h
	return func() {
		u.mu.Lock()
		delete(u.hooks, id)
		u.mu.Unlock()
	}
}

func (u *Upgrader) hookList() []tableflip.Hooks {
	u.mu.Lock()
	defer u.mu.Unlock()
	var hs []tableflip.Hooks
	for id := 0; id < u.nextHook; id++ {
		if h, ok := u.hooks[id]; ok {
			hs = append(hs, h)
		}
	}
	return hs
}

// Generation is always 1.
func (u *Upgrader) Generation() int { return 1 }

// Logger returns the logger given to New.
func (u *Upgrader) Logger() *zap.Logger { return u.log }

// Ready moves to the ready state and runs the Ready hooks. A second call
// returns an error wrapping tableflip.ErrAlreadyReady, as with the real one.
func (u *Upgrader) Ready() error {
	u.mu.Lock()
	switch u.state {
	case tableflip.StateStopped:
		u.mu.Unlock()
		return tableflip.ErrStopped
	case tableflip.StateInitial:
	default:
		st := u.state
		u.mu.Unlock()
		return fmt.Errorf("%w (state %s)", tableflip.ErrAlreadyReady, st)
	}
	u.state = tableflip.StateReady
	u.mu.Unlock()
	for _, h := range u.hookList() {
		if h.Ready != nil {
			h.Ready()
		}
	}
	return nil
}

// Upgrade returns tableflip.ErrNotSupported.
func (u *Upgrader) Upgrade(ctx context.Context) (int, error) {
	return 0, fmt.Errorf("%w: tablefliptest.Upgrader never upgrades", tableflip.ErrNotSupported)
}

// Exit is closed by Stop.
func (u *Upgrader) Exit() <-chan struct{} { return u.exit }

// Stop runs the FinalStop hooks once and closes Exit.
func (u *Upgrader) Stop() {
	u.mu.Lock()
	if u.state == tableflip.StateStopped {
		u.mu.Unlock()
		return
	}
	u.state = tableflip.StateStopped
	u.mu.Unlock()
	for _, h := range u.hookList() {
		if h.FinalStop != nil {
			h.FinalStop()
		}
	}
	close(u.exit)
}

// WaitForParent returns at once: there is no parent.
func (u *Upgrader) WaitForParent(ctx context.Context) error { return nil }

// HasParent is always false.
func (u *Upgrader) HasParent() bool { return false }

// Fail stops the upgrader; there is no parent to tell.
func (u *Upgrader) Fail(reason error) {
	u.log.Error("fail", zap.Error(reason))
	u.Stop()
}

// LoadState is always empty.
func (u *Upgrader) LoadState() io.Reader { return bytes.NewReader(nil) }

// State is initial, ready or stopped.
func (u *Upgrader) State() tableflip.State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.state
}
