// The new generation's side of an upgrade: New reads the parent's files and
// the start of its state, Ready answers and waits for the parent's ack.
// parent.go is the other side; docs/architecture.md draws both.

package tableflip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// inherit reads the parent's hello and files from the handoff socket.
func (u *Upgrader) inherit(env string) error {
	fd, err := strconv.Atoi(env)
	if err != nil || fd < 0 {
		return fmt.Errorf("%w: %s=%q is not a file descriptor number", ErrProtocol, handoffEnv, env)
	}
	hc, err := openHandoff(fd)
	if err != nil {
		return err
	}
	return u.readHandoff(hc)
}

// readHandoff speaks the child's side of the handoff on hc up to the state
// stream: hello both ways, then the files.
func (u *Upgrader) readHandoff(hc *handoffConn) error {
	// A parent that hangs must not hang us: the whole handoff, until the
	// parent acknowledges our ready, gets the upgrade timeout, as it has
	// on the parent's side.
	hc.setDeadline(time.Now().Add(u.opts.UpgradeTimeout))
	fail := func(err error) error {
		hc.writeFrame(frameFail, []byte(err.Error()), nil)
		hc.Close()
		return err
	}
	if err := hc.writeFrame(frameHello, encodeHello(hello{version: protocolVersion, pid: os.Getpid(), generation: 1}), nil); err != nil {
		hc.Close()
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			err = fmt.Errorf("%w: %s names a socket with nothing at the other end: no parent is waiting for this process (a stray %s in the environment?): %w", ErrProtocol, handoffEnv, handoffEnv, err)
		}
		return err
	}
	f, err := hc.readFrame()
	if err != nil {
		if err == io.EOF {
			err = protoErr("parent closed the handoff before its hello")
		}
		return fail(fmt.Errorf("tableflip: read parent hello: %w", err))
	}
	if f.typ == frameFail {
		hc.Close()
		return fmt.Errorf("%w: parent refused the handoff: %s", ErrProtocol, f.payload)
	}
	h, err := decodeHello(f)
	if err != nil {
		return fail(err)
	}
	u.parentPid = h.pid
	u.generation = h.generation + 1
	files := 0
	for {
		f, fds, err := hc.readFiles()
		if err != nil {
			u.closeInherited()
			if err == io.EOF {
				err = protoErr("parent closed the handoff before its end frame")
			}
			return fail(fmt.Errorf("tableflip: read files from parent: %w", err))
		}
		if f.typ != frameFiles {
			// The first non-files frame starts the state stream.
			u.stateR = &stateReader{hc: hc, pending: &f, files: files}
			break
		}
		recs, err := decodeRecords(f.payload, len(fds))
		if err == nil {
			for i, r := range recs {
				name := entryName(r.transport, r.key)
				if _, dup := u.s.inherited[name]; dup {
					err = protoErr("file %s:%s passed twice", r.transport, r.key)
					break
				}
				u.s.inherited[name] = &entry{transport: r.transport, key: r.key, fd: fds[i], meta: r.meta, companion: r.flags&flagCompanion != 0}
				fds[i] = -1
				files++
			}
		}
		if err != nil {
			for _, fd := range fds {
				if fd >= 0 {
					closeFd(fd)
				}
			}
			u.closeInherited()
			return fail(err)
		}
	}
	u.parent = hc
	return nil
}

func (u *Upgrader) closeInherited() {
	for name, e := range u.s.inherited {
		e.close()
		delete(u.s.inherited, name)
	}
}

// stateReader streams the parent's state frames up to the end frame.
type stateReader struct {
	hc      *handoffConn
	pending *frame
	buf     []byte
	files   int // files received before the state stream
	ended   bool
	err     error
}

func (s *stateReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.ended {
			return 0, io.EOF
		}
		var f frame
		if s.pending != nil {
			f, s.pending = *s.pending, nil
		} else {
			var err error
			if f, err = s.hc.readFrame(); err != nil {
				if err == io.EOF {
					err = protoErr("parent closed the handoff before its end frame")
				}
				s.err = err
				s.hc.writeFrame(frameFail, []byte(err.Error()), nil)
				return 0, err
			}
		}
		switch f.typ {
		case frameState:
			s.buf = f.payload
		case frameEnd:
			n, err := decodeEnd(f)
			if err == nil && n != s.files {
				err = protoErr("end frame counts %d files, %d arrived", n, s.files)
			}
			if err != nil {
				s.err = err
				s.hc.writeFrame(frameFail, []byte(err.Error()), nil)
				return 0, err
			}
			s.ended = true
		case frameFail:
			s.err = fmt.Errorf("%w: parent aborted the handoff: %s", ErrProtocol, f.payload)
		default:
			s.err = protoErr("unexpected frame %q in the state stream", f.typ)
			s.hc.writeFrame(frameFail, []byte(s.err.Error()), nil)
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// LoadState returns the application state the parent wrote with
// Options.SaveState. Read it before Ready; Ready discards what is left. It is
// empty without a parent.
func (u *Upgrader) LoadState() io.Reader {
	if u.stateR == nil {
		return bytes.NewReader(nil)
	}
	return u.stateR
}

// WaitForParent blocks until the parent generation has stopped (called Stop
// or exited), or ctx is done. It returns at once without a parent.
func (u *Upgrader) WaitForParent(ctx context.Context) error {
	select {
	case <-u.parentGone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tableflip: wait for parent %d: %w", u.parentPid, ctx.Err())
	}
}

// Ready signals that this generation serves: inherited files nobody claimed
// are closed, the PID file is written, and the parent's Upgrade returns our
// pid. A Ready that fails tells the parent why.
func (u *Upgrader) Ready() error {
	var (
		unclaimed []*entry
		hooks     []registeredHooks
		err       error
	)
	if !u.do(func() { unclaimed, hooks, err = u.becomeReady() }) {
		return ErrStopped
	}
	if err != nil {
		return err
	}
	// Committed: this generation may now drop what it inherited and does
	// not use. An Unclaimer may unlink a socket path, which a parent that
	// gave up on us would still serve; it runs here, off the run
	// goroutine, as do the Ready hooks.
	for _, e := range unclaimed {
		u.log.Warn("closing inherited file nobody claimed",
			zap.String("transport", e.transport), zap.String("key", e.key))
		if t, ok := lookup(e.transport); ok {
			if uc, ok := t.(Unclaimer); ok {
				uc.Unclaimed(e.key, e.meta)
			}
		}
		e.close()
	}
	u.log.Info("ready", zap.Int("pid", os.Getpid()))
	for _, h := range hooks {
		if h.Ready != nil {
			h.Ready()
		}
	}
	return nil
}

// Fail stops the upgrader, and tells the parent that this generation cannot
// start: its Upgrade returns a *ChildError whose Reason is reason's message.
// After Ready, or without a parent, it only stops.
func (u *Upgrader) Fail(reason error) {
	u.stop(reason)
}

// becomeReady runs on the run goroutine when Ready is called. On success it
// returns the inherited files nobody claimed, taken out of the set, and the
// hooks to run.
func (u *Upgrader) becomeReady() ([]*entry, []registeredHooks, error) {
	switch {
	case u.s.stopping:
		return nil, nil, ErrStopped
	case u.s.state != stateInitial:
		return nil, nil, fmt.Errorf("%w (state %s)", ErrAlreadyReady, u.s.state)
	}
	if u.parent != nil {
		// Whatever state the application did not read is discarded, so
		// that the parent can finish writing. The state stream has told
		// the parent of its own errors.
		if _, err := io.Copy(io.Discard, u.stateR); err != nil {
			return nil, nil, fmt.Errorf("tableflip: read state from parent: %w", err)
		}
	}
	if u.parent != nil {
		// A generation that could not accept once committed would be
		// an outage; its parent can serve on. (Without a parent there is
		// nobody to serve on: a first generation starts as it can.)
		if err := checkFdReserve(u.parent); err != nil {
			u.parent.writeFrame(frameFail, []byte(err.Error()), nil)
			u.log.Error("ready failed", zap.Int("pid", os.Getpid()), zap.Error(err))
			return nil, nil, err
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
			return nil, nil, err
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
			return nil, nil, err
		}
		u.parent.setDeadline(time.Time{})
		u.wg.Add(1)
		go u.watchParent()
	}
	u.s.state = stateReady
	u.s.activated.closeUnclaimed()
	unclaimed := make([]*entry, 0, len(u.s.inherited))
	for name, e := range u.s.inherited {
		unclaimed = append(unclaimed, e)
		delete(u.s.inherited, name)
	}
	return unclaimed, slices.Clone(u.s.hooks), nil
}

func (u *Upgrader) awaitAck() error {
	f, err := u.parent.readFrame()
	switch {
	case err == io.EOF:
		return fmt.Errorf("%w: parent %d closed the handoff instead of acknowledging our ready", ErrProtocol, u.parentPid)
	case err != nil:
		return fmt.Errorf("tableflip: wait for parent %d to acknowledge ready: %w", u.parentPid, err)
	case f.typ == frameFail:
		return fmt.Errorf("%w: parent %d gave up on us: %s", ErrProtocol, u.parentPid, f.payload)
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
