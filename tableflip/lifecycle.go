package tableflip

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
)

// Upgrade starts the next generation, hands it every passed file and the
// application state, and waits until it is ready or has failed. It returns
// the new generation's pid. On failure this generation keeps serving and the
// error says why (a *ChildError for the child's own failure). ctx bounds the
// wait in addition to Options.UpgradeTimeout.
func (u *Upgrader) Upgrade(ctx context.Context) (int, error) {
	reply := make(chan upgradeResult, 1)
	select {
	case u.upgradeC <- upgradeRequest{ctx: ctx, reply: reply}:
	case <-u.done:
		return 0, ErrStopped
	}
	r := <-reply
	return r.pid, r.err
}

// Stop ends this generation. During an upgrade the child is killed and
// reaped first. On a generation with no successor it is the final stop: the
// FinalStop hooks run and the PID file is removed. Every passed file is
// closed. Stop is idempotent and returns when all is done, with one
// exception: after a successful upgrade, a goroutine keeps waiting for the
// child so that it is reaped, not left a zombie, if it exits before this
// process does.
func (u *Upgrader) Stop() { u.stop(nil) }

// stop is Stop, and Fail with a reason: the run goroutine tells a parent
// that is still waiting for this generation's answer.
func (u *Upgrader) stop(reason error) {
	u.stopOnce.Do(func() {
		u.failReason = reason
		close(u.stopC)
	})
	<-u.done
	u.wg.Wait()
}

// run owns the lifecycle state: every transition happens here.
func (u *Upgrader) run() {
	defer u.wg.Done()
	defer close(u.done)
	var (
		upgrading    chan upgradeResult
		upgradeReply chan upgradeResult
		inflight     struct{ cancel context.CancelFunc }
		started      time.Time
	)
	for {
		select {
		case reply := <-u.readyC:
			if st := u.State(); st != StateInitial {
				reply <- fmt.Errorf("%w (state %s)", ErrAlreadyReady, st)
				continue
			}
			err := u.becomeReady()
			if err == nil {
				u.setState(StateReady)
			}
			reply <- err

		case req := <-u.upgradeC:
			switch st := u.State(); st {
			case StateReady:
			case StateInitial:
				req.reply <- upgradeResult{err: ErrNotReady}
				continue
			case StateUpgrading:
				req.reply <- upgradeResult{err: ErrUpgradeInProgress}
				continue
			case StateUpgraded:
				req.reply <- upgradeResult{err: ErrUpgraded}
				continue
			default:
				req.reply <- upgradeResult{err: ErrStopped}
				continue
			}
			u.setState(StateUpgrading)
			started = time.Now()
			u.log.Info("upgrade started", zap.Int("pid", os.Getpid()))
			ctx, cancel := context.WithCancel(req.ctx)
			inflight.cancel = cancel
			upgrading = make(chan upgradeResult, 1)
			upgradeReply = req.reply
			go func(ch chan upgradeResult) { ch <- u.upgrade(ctx) }(upgrading)

		case r := <-upgrading:
			inflight.cancel()
			upgrading = nil
			u.finishUpgrade(r, started)
			upgradeReply <- upgradeResult{pid: r.pid, err: r.err}

		case <-u.stopC:
			if upgrading != nil {
				inflight.cancel()
				r := <-upgrading
				if r.err != nil {
					// The child was killed and reaped.
					r.err = fmt.Errorf("%w during the upgrade: %w", ErrStopped, r.err)
				}
				// A child acknowledged just before the cancel is the
				// service now: this Stop is then not the final one.
				u.finishUpgrade(r, started)
				upgradeReply <- upgradeResult{pid: r.pid, err: r.err}
			}
			u.shutdown()
			return
		}
	}
}

func (u *Upgrader) finishUpgrade(r upgradeResult, started time.Time) {
	fields := []zap.Field{zap.Int("pid", os.Getpid()), zap.Duration("duration", time.Since(started))}
	if r.err != nil {
		u.setState(StateReady)
		u.log.Error("upgrade failed", append(fields, zap.Error(r.err))...)
	} else {
		u.child = r.child
		u.setState(StateUpgraded)
		close(u.exitC)
		u.log.Info("upgrade succeeded", append(fields, zap.Int("child_pid", r.pid))...)
	}
	for _, h := range u.hookList() {
		if h.Done != nil {
			h.Done(r.pid, r.err)
		}
	}
}

// becomeReady runs on the run goroutine when Ready is called.
func (u *Upgrader) becomeReady() error {
	if u.parent != nil {
		// Whatever state the application did not read is discarded, so
		// that the parent can finish writing. The state stream has told
		// the parent of its own errors.
		if _, err := io.Copy(io.Discard, u.stateR); err != nil {
			return fmt.Errorf("tableflip: read state from parent: %w", err)
		}
	}
	undoPIDFile := func() {}
	if u.opts.PIDFile != "" {
		undo, err := writePIDFile(u.opts.PIDFile, os.Getpid())
		if err != nil {
			if u.parent != nil {
				u.parent.writeFrame(frameFail, []byte(err.Error()), nil)
			}
			u.log.Error("ready failed", zap.Int("pid", os.Getpid()), zap.Error(err))
			return err
		}
		undoPIDFile = undo
	}
	if u.parent != nil {
		err := u.parent.writeFrame(frameReady, nil, nil)
		if err != nil {
			err = fmt.Errorf("tableflip: tell parent %d we are ready: %w", u.parentPid, err)
		} else {
			// Wait for the parent to commit: until it acknowledges, it
			// may still give up on us (its timeout, its Stop), and this
			// generation must not have started work that the parent,
			// serving on, would do too.
			err = u.awaitAck()
		}
		if err != nil {
			// The parent serves on: the PID file is its own again.
			undoPIDFile()
			u.log.Error("ready failed", zap.Int("pid", os.Getpid()), zap.Error(err))
			return err
		}
		u.parent.setDeadline(time.Time{})
		u.wg.Add(1)
		go u.watchParent()
	}
	// Only now, committed, may this generation drop what it inherited and
	// does not use: an Unclaimer may unlink a socket path, which a parent
	// that gave up on us would still serve.
	u.activated.closeUnclaimed()
	u.mu.Lock()
	for name, e := range u.inherited {
		u.log.Warn("closing inherited file nobody claimed",
			zap.String("transport", e.transport), zap.String("key", e.key))
		if t, ok := Lookup(e.transport); ok {
			if uc, ok := t.(Unclaimer); ok {
				uc.Unclaimed(e.key, e.meta)
			}
		}
		e.close()
		delete(u.inherited, name)
	}
	u.mu.Unlock()
	u.log.Info("ready", zap.Int("pid", os.Getpid()))
	for _, h := range u.hookList() {
		if h.Ready != nil {
			h.Ready()
		}
	}
	return nil
}

func (u *Upgrader) awaitAck() error {
	f, err := u.parent.readFrame()
	switch {
	case err == io.EOF:
		return fmt.Errorf("tableflip: parent %d closed the handoff instead of acknowledging our ready", u.parentPid)
	case err != nil:
		return fmt.Errorf("tableflip: wait for parent %d to acknowledge ready: %w", u.parentPid, err)
	case f.typ == frameFail:
		return fmt.Errorf("tableflip: parent %d gave up on us: %s", u.parentPid, f.payload)
	case f.typ != frameAck:
		return protoErr("parent sent frame %q, want ack", f.typ)
	}
	return nil
}

// watchParent closes parentGone when the parent's end of the handoff socket
// closes: the parent has stopped or exited.
func (u *Upgrader) watchParent() {
	defer u.wg.Done()
	var b [1]byte
	for {
		if _, err := u.parent.c.Read(b[:]); err != nil {
			break
		}
	}
	u.parent.Close()
	u.log.Info("parent gone", zap.Int("pid", os.Getpid()), zap.Int("parent_pid", u.parentPid))
	close(u.parentGone)
}

// shutdown runs on the run goroutine at Stop.
func (u *Upgrader) shutdown() {
	prev := u.State()
	u.setState(StateStopped)
	// A generation that hands over, or a child that never became ready
	// (its parent serves on), is not the last: nothing it shares with
	// them, a socket path, a PID file, may go.
	final := prev != StateUpgraded && !(prev == StateInitial && u.parent != nil)
	if final {
		for _, h := range u.hookList() {
			if h.FinalStop != nil {
				h.FinalStop()
			}
		}
		if u.opts.PIDFile != "" && prev != StateInitial {
			if err := removePIDFile(u.opts.PIDFile, os.Getpid()); err != nil {
				u.log.Error("pid file left behind", zap.Int("pid", os.Getpid()), zap.Error(err))
			}
		}
	}
	select {
	case <-u.exitC:
	default:
		close(u.exitC)
	}
	u.mu.Lock()
	for name, e := range u.inherited {
		e.close()
		delete(u.inherited, name)
	}
	for name, e := range u.passing {
		e.close()
		delete(u.passing, name)
	}
	u.mu.Unlock()
	if u.child != nil {
		// Closing our end tells the child's WaitForParent we are done.
		u.child.conn.Close()
	}
	if u.parent != nil {
		if prev == StateInitial {
			// Stopped before Ready: the parent must not wait for us.
			reason := "tableflip: child stopped before it was ready"
			if u.failReason != nil {
				reason = u.failReason.Error()
			}
			u.parent.writeFrame(frameFail, []byte(reason), nil)
		}
		u.parent.Close()
	}
	u.log.Info("stopped", zap.Int("pid", os.Getpid()), zap.Bool("final", final))
}
