// The old generation's side of an upgrade: Upgrade starts the child, hands
// it the files and the state, waits for its ready, and commits with the ack.
// child.go is the other side; docs/architecture.md draws both.

package tableflip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

var errUpgradeTimeout = errors.New("tableflip: upgrade timed out")

// childProc is a started next generation.
type childProc struct {
	cmd    *exec.Cmd
	conn   *handoffConn
	spoke  bool // it sent its hello: it runs tableflip.New
	exited chan struct{}
	state  *os.ProcessState
}

func (c *childProc) wait() {
	c.cmd.Wait()
	c.state = c.cmd.ProcessState
	close(c.exited)
}

// exitError describes the child, once reaped: its pid, how it ended, and
// reason and err.
func (c *childProc) exitError(reason string, err error) *ChildError {
	return &ChildError{Pid: c.cmd.Process.Pid, Reason: reason, ExitStatus: exitStatus(c.state), Signal: exitSignal(c.state), Err: err}
}

// waitExit waits up to d for the child to exit.
func (c *childProc) waitExit(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
	}
}

// kill stops the child, SIGTERM first and SIGKILL after grace, and returns
// once it has been reaped.
func (c *childProc) kill(grace time.Duration) {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.exited:
		return
	case <-t.C:
	}
	c.cmd.Process.Kill()
	<-c.exited
}

// Upgrade starts the next generation, hands it every passed file and the
// application state, and waits until it is ready or has failed. It returns
// the new generation's pid. On failure this generation keeps serving and the
// error says why (a *ChildError for the child's own failure). ctx bounds the
// wait in addition to Options.UpgradeTimeout.
func (u *Upgrader) Upgrade(ctx context.Context) (int, error) {
	var (
		reply chan upgradeResult
		err   error
	)
	if !u.do(func() { reply, err = u.startUpgrade(ctx) }) {
		return 0, ErrStopped
	}
	if err != nil {
		return 0, err
	}
	r := <-reply
	return r.pid, r.err
}

// startUpgrade runs on the run goroutine: it checks that an upgrade may
// start and starts it on a goroutine of its own, whose result run receives.
func (u *Upgrader) startUpgrade(ctx context.Context) (chan upgradeResult, error) {
	switch st := u.s.state; {
	case u.s.stopping:
		return nil, ErrStopped
	case st == stateInitial:
		return nil, ErrNotReady
	case st == stateUpgrading:
		return nil, ErrUpgradeInProgress
	case st == stateUpgraded:
		return nil, ErrUpgraded
	case st != stateReady:
		return nil, ErrStopped
	}
	if u.standalone {
		return nil, fmt.Errorf("%w: a tablefliptest Upgrader never upgrades", ErrNotSupported)
	}
	u.s.state = stateUpgrading
	u.log.Info("upgrade started", zap.Int("pid", os.Getpid()))
	ctx, cancel := context.WithCancel(ctx)
	up := &upgradeRun{cancel: cancel, result: make(chan upgradeResult, 1), reply: make(chan upgradeResult, 1), started: time.Now()}
	u.s.upgrade = up
	go func() {
		r := u.upgrade(ctx)
		for _, h := range u.hookList() {
			if h.Done != nil {
				h.Done(r.pid, r.err)
			}
		}
		up.result <- r
	}()
	return up.reply, nil
}

// finishUpgrade runs on the run goroutine when the upgrade has ended and
// its Done hooks have run.
func (u *Upgrader) finishUpgrade(r upgradeResult, started time.Time) {
	for _, e := range u.s.retired {
		e.close() // forgotten while the upgrade could be sending them
	}
	u.s.retired = nil
	fields := []zap.Field{zap.Int("pid", os.Getpid()), zap.Duration("duration", time.Since(started))}
	if r.err != nil {
		u.s.state = stateReady
		u.log.Error("upgrade failed", append(fields, zap.Error(r.err))...)
		return
	}
	u.s.child = r.child
	u.s.state = stateUpgraded
	u.s.reclaim = nil
	u.closeExit()
	u.log.Info("upgrade succeeded", append(fields, zap.Int("child_pid", r.pid))...)
	if u.parent != nil {
		// Our own parent, if still alive, must not take the service
		// back when we exit: our successor serves.
		u.parent.writeFrame(frameLeave, nil, nil)
	}
	u.wg.Add(1)
	go u.watchSuccessor(r.child)
}

// watchSuccessor runs on a goroutine of its own after a handover, until
// the successor leaves on purpose or exits, or this generation stops. A
// successor that exits without having said it leaves (it crashed, or was
// killed) while this generation still runs gives the service back to it
// (takeBack), if the application asked for that (Resumed).
func (u *Upgrader) watchSuccessor(c *childProc) {
	defer u.wg.Done()
	for {
		f, err := c.conn.readFrame()
		if err == nil {
			if f.typ == frameLeave {
				u.log.Info("successor leaves on purpose: no take-back", zap.Int("pid", os.Getpid()), zap.Int("child_pid", c.cmd.Process.Pid))
				return
			}
			continue // nothing else is sent after the ack: ignore it
		}
		if !errors.Is(err, io.EOF) && !peerGone(err) {
			// Our own Stop closed the socket, or the successor sent
			// garbage: either way, not a death to act on.
			return
		}
		break
	}
	// The successor's end closed without a leave: it is exiting.
	select {
	case <-c.exited:
	case <-u.stopC:
		return
	}
	var hooks []registeredHooks
	var ce *ChildError
	u.do(func() { hooks, ce = u.takeBackFrom(c) })
	if ce == nil {
		return
	}
	for _, h := range hooks {
		if h.Resumed != nil {
			h.Resumed(ce)
		}
	}
}

// takeBackFrom runs on the run goroutine when the successor c has exited
// without leaving. If this generation may take the service back, it does,
// and returns the hooks to run and the successor's error.
func (u *Upgrader) takeBackFrom(c *childProc) ([]registeredHooks, *ChildError) {
	ce := c.exitError("exited after it took over", nil)
	if u.s.state != stateUpgraded || u.s.stopping || u.s.child != c {
		return nil, nil
	}
	if !u.takeBack.Load() {
		u.log.Error("successor exited after the handover; nobody serves (call Resumed to take the service back)",
			zap.Int("pid", os.Getpid()), zap.Int("child_pid", ce.Pid), zap.Error(ce))
		return nil, nil
	}
	u.s.state = stateReady
	u.s.child = nil
	c.conn.Close()
	u.s.reclaim = make(map[string]bool, len(u.s.passing))
	for name := range u.s.passing {
		u.s.reclaim[name] = true
	}
	if u.opts.PIDFile != "" {
		if _, err := writePIDFile(u.opts.PIDFile, os.Getpid()); err != nil {
			u.log.Error("take-back: pid file not rewritten", zap.Int("pid", os.Getpid()), zap.Error(err))
		}
	}
	exit := make(chan struct{})
	u.exitC.Store(&exit)
	close(*u.resumeC.Load())
	u.log.Error("successor exited after the handover: taking the service back",
		zap.Int("pid", os.Getpid()), zap.Int("child_pid", ce.Pid), zap.Int("exit_status", ce.ExitStatus), zap.Error(ce))
	return slices.Clone(u.s.hooks), ce
}

// filesToSend lists the files an upgrade sends: every passed one, with this
// upgrade's metadata, then its companions. They are sent off the run
// goroutine; a Forget meanwhile leaves the descriptor open until the
// upgrade ends (finishUpgrade).
func (u *Upgrader) filesToSend(h *Handoff) []*entry {
	var all []*entry
	u.do(func() {
		all = make([]*entry, 0, len(u.s.passing)+len(h.extra))
		for name, e := range u.s.passing {
			if m, ok := h.meta[name]; ok {
				e2 := *e
				e2.meta = m
				e = &e2
			}
			all = append(all, e)
		}
	})
	return append(all, h.extra...)
}

// upgrade runs on its own goroutine; the run loop waits for its result.
func (u *Upgrader) upgrade(ctx context.Context) upgradeResult {
	ctx, cancel := context.WithTimeoutCause(ctx, u.opts.UpgradeTimeout, errUpgradeTimeout)
	defer cancel()

	h := &Handoff{generation: u.generation + 1}
	defer func() {
		for _, e := range h.extra {
			e.close()
		}
	}()
	// Until a child runs, a failure is a ChildError with no pid.
	notStarted := func(err error) upgradeResult {
		return upgradeResult{err: &ChildError{ExitStatus: -1, Err: err}}
	}
	for _, hk := range u.hookList() {
		if hk.Prepare != nil {
			if err := hk.Prepare(ctx, h); err != nil {
				return notStarted(fmt.Errorf("tableflip: prepare handoff: %w", err))
			}
		}
	}
	cmd, err := u.nextCmd(ctx)
	if err != nil {
		return notStarted(err)
	}
	conn, childEnd, err := socketpair()
	if err != nil {
		return notStarted(err)
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", handoffEnv, 3+len(cmd.ExtraFiles)))
	cmd.ExtraFiles = append(cmd.ExtraFiles, childEnd)
	err = cmd.Start()
	childEnd.Close()
	if err != nil {
		conn.Close()
		return notStarted(fmt.Errorf("tableflip: start next generation %s: %w", cmd.Path, err))
	}
	c := &childProc{cmd: cmd, conn: conn, exited: make(chan struct{})}
	go c.wait()

	// A done context interrupts whatever read or write is blocked.
	stop := context.AfterFunc(ctx, func() { conn.c.SetDeadline(time.Unix(1, 0)) })
	reason, err := u.handoff(ctx, c, h)
	if err == nil && reason == "" {
		// The child is ready. Commit, unless we gave up meanwhile (the
		// timeout, the caller's context, Stop): once acknowledged, the
		// child is the service, and it does no work before that.
		if err = context.Cause(ctx); err == nil {
			err = conn.writeFrame(frameAck, nil, nil)
		}
		if err == nil {
			stop()
			return upgradeResult{pid: cmd.Process.Pid, child: c}
		}
	}
	interrupted := !stop()
	if !interrupted {
		if reason == "" {
			// Tell the child why, if it still listens.
			conn.writeFrame(frameFail, []byte(err.Error()), nil)
		}
		// The child knows it failed: let it exit on its own, so its
		// exit status is its own, before it is made to.
		c.waitExit(u.opts.KillGrace)
	}
	// Closing first tells a child that waits for our answer (in New, or
	// for the ack in Ready) that we gave up, so that it can exit by
	// itself instead of hanging until SIGKILL.
	conn.Close()
	c.kill(u.opts.KillGrace)
	ce := c.exitError(reason, err)
	if errors.Is(context.Cause(ctx), errUpgradeTimeout) {
		ce.TimedOut = true
		ce.silent = !c.spoke
		ce.Err = nil
	} else if ctx.Err() != nil {
		ce.Err = context.Cause(ctx)
	} else if reason != "" || errors.Is(err, io.EOF) {
		ce.Err = nil
	}
	return upgradeResult{err: ce}
}

// exitStatus is the status of a process that exited by itself, else -1.
// ps is nil when the wait failed: something else in this process, a
// zombie reaper run as PID 1, may have reaped the child first.
func exitStatus(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Exited() {
		return ws.ExitStatus()
	}
	return -1
}

// handoff speaks the parent's side of the protocol. It returns the child's
// own reason when the child reported a failure.
//
// It does not wait for the child's hello before it sends its own, the
// files and the state: they are queued on the socket while the child
// starts, and the child reads them right after it has written its hello,
// so that a busy parent's wake-up is not on the child's path to its files.
// The child's hello is read meanwhile, and checked as before: a child that
// fails, exits or speaks another version is refused with the same errors,
// and sending stops at the next frame once its hello (or its silence) has
// ruled it out.
func (u *Upgrader) handoff(ctx context.Context, c *childProc, h *Handoff) (string, error) {
	hc := c.conn
	ch := readChildHello(hc)
	serr := u.send(ctx, hc, h, ch.refused)
	if serr != nil && !peerGone(serr) && !errors.Is(serr, errChildRefused) {
		// Our own failure (a record, the state): the child's hello
		// cannot change the answer, so stop waiting for it. Only the
		// read side: the caller may still write the child a fail frame.
		hc.c.SetReadDeadline(time.Unix(1, 0))
		<-ch.done
		c.spoke = ch.err == nil
		return "", serr
	}
	<-ch.done // bounded: the child answers, exits, or ctx sets the deadline
	if ch.err != nil {
		return "", fmt.Errorf("read child hello: %w", ch.err)
	}
	c.spoke = true
	if ch.f.typ == frameFail {
		return string(ch.f.payload), nil
	}
	if ch.herr != nil {
		// Sending stopped at a frame boundary, or the stream is broken
		// and writeFrame refuses to add to it.
		hc.writeFrame(frameFail, []byte(ch.herr.Error()), nil)
		return "", ch.herr
	}
	if serr != nil {
		// The child gave up and went away while we wrote: its reason,
		// if it gave one, is waiting to be read.
		if f, rerr := hc.readFrame(); rerr == nil && f.typ == frameFail {
			return string(f.payload), nil
		}
		return "", serr
	}
	f, err := hc.readFrame()
	switch {
	case err == io.EOF:
		return "", fmt.Errorf("child closed the handoff before it was ready: %w", err)
	case err != nil:
		return "", err
	case f.typ == frameReady:
		return "", nil
	case f.typ == frameFail:
		return string(f.payload), nil
	}
	return "", protoErr("child sent frame %q, want ready or fail", f.typ)
}

// errChildRefused stops a send whose child has been ruled out meanwhile.
var errChildRefused = errors.New("tableflip: child refused")

// peerGone tells the errors of a write to a child that has closed its end.
func peerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// childHello is the child's first frame, read on a goroutine of its own
// while the parent sends; its fields are set when done is closed.
type childHello struct {
	done chan struct{}
	f    frame
	err  error // the read's
	herr error // the hello's: refused
}

func readChildHello(hc *handoffConn) *childHello {
	ch := &childHello{done: make(chan struct{})}
	go func() {
		defer close(ch.done)
		ch.f, ch.err = hc.readFrame()
		if ch.err == nil && ch.f.typ != frameFail {
			_, ch.herr = decodeHello(ch.f)
		}
	}()
	return ch
}

// refused reports, without waiting, whether the child is ruled out: it
// failed, went away or sent a hello we refuse.
func (ch *childHello) refused() bool {
	select {
	case <-ch.done:
		return ch.err != nil || ch.f.typ == frameFail || ch.herr != nil
	default:
		return false
	}
}

// send writes everything the child gets: hello, files, state, end. It
// stops with errChildRefused before any frame once refused says so.
func (u *Upgrader) send(ctx context.Context, hc *handoffConn, h *Handoff, refused func() bool) error {
	if err := hc.writeFrame(frameHello, encodeHello(hello{version: protocolVersion, pid: os.Getpid(), generation: u.generation}), nil); err != nil {
		return err
	}
	total, err := u.sendFiles(hc, h, refused)
	if err != nil {
		return err
	}
	if u.opts.SaveState != nil {
		if refused() {
			return errChildRefused
		}
		w := &stateWriter{hc: hc, refused: refused}
		err := u.opts.SaveState(ctx, w)
		if err == nil {
			err = w.flush()
		}
		if errors.Is(err, errChildRefused) {
			return errChildRefused
		}
		if err != nil {
			err = fmt.Errorf("tableflip: save state: %w", err)
			hc.writeFrame(frameFail, []byte(err.Error()), nil)
			return err
		}
	}
	if refused() {
		return errChildRefused
	}
	return hc.writeEnd(total)
}

// sendFiles sends every passed file, and this upgrade's extra files, in
// batches the kernel accepts in one message.
func (u *Upgrader) sendFiles(hc *handoffConn, h *Handoff, refused func() bool) (int, error) {
	all := u.filesToSend(h)

	var (
		payload []byte
		fds     []int
	)
	flush := func() error {
		if len(fds) == 0 {
			return nil
		}
		if refused() {
			return errChildRefused
		}
		err := hc.writeFrame(frameFiles, payload, fds)
		payload, fds = payload[:0], fds[:0]
		return err
	}
	for _, e := range all {
		r := record{transport: e.transport, key: e.key, meta: e.meta}
		if e.companion {
			r.flags |= flagCompanion
		}
		if err := checkRecord(r); err != nil {
			return 0, err
		}
		if len(fds) == maxFdsPerFrame || len(payload)+recordLen(r) > maxFilesPayload {
			if err := flush(); err != nil {
				return 0, err
			}
		}
		payload = appendRecord(payload, r)
		fds = append(fds, e.fd)
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return len(all), nil
}

// stateWriter cuts the application's state into state frames.
type stateWriter struct {
	hc      *handoffConn
	buf     []byte
	refused func() bool
}

func (w *stateWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(maxStateChunk-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == maxStateChunk {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *stateWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if w.refused() {
		return errChildRefused
	}
	err := w.hc.writeFrame(frameState, w.buf, nil)
	w.buf = w.buf[:0]
	return err
}

// nextCmd is the command of the next generation: by default the current
// executable, looked up again now so that a binary replaced on disk is the
// one that starts; then Options.Next may change it.
func (u *Upgrader) nextCmd(ctx context.Context) (*exec.Cmd, error) {
	path, gone := executablePath(u.exe)
	cmd := &exec.Cmd{
		Path:   path,
		Args:   slices.Clone(os.Args),
		Env:    childEnv(os.Environ()),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	}
	if u.opts.Next != nil {
		if err := u.opts.Next(ctx, cmd); err != nil {
			return nil, fmt.Errorf("tableflip: Options.Next: %w", err)
		}
		if cmd.Path == "" {
			return nil, errors.New("tableflip: Options.Next left an empty Path")
		}
		if len(cmd.Args) == 0 {
			cmd.Args = []string{cmd.Path}
		}
		if cmd.Env == nil {
			cmd.Env = os.Environ() // as with os/exec: nil means this process's environment
		}
		cmd.Env = childEnv(cmd.Env)
	}
	if gone != nil && cmd.Path == selfExe {
		// Not an error (go run deletes its build, and this is how such
		// a service upgrades at all), but a deploy that removed the
		// binary instead of replacing it deploys nothing: say so.
		u.log.Warn("executable gone: the next generation runs this generation's image again, the upgrade does not change the version",
			zap.Int("pid", os.Getpid()), zap.String("path", u.exe), zap.NamedError("cause", gone))
	}
	return cmd, nil
}

// selfExe is the running image, on Linux.
const selfExe = "/proc/self/exe"

// executablePath is the next version's binary: whatever is at the path this
// process was started from, now. That is the binary a deploy put there,
// whether it renamed the new file over the old one or moved the old one
// aside first. When nothing is there any more (`go run` removes its build
// directory once the first generation exits), Linux can still exec the
// running image through /proc/self/exe; gone says why started was not
// used.
func executablePath(started string) (path string, gone error) {
	if started == "" {
		gone = errors.New("the path this process was started from is unknown")
	} else if _, err := os.Stat(started); err != nil {
		gone = err
	} else {
		return started, nil
	}
	if runtime.GOOS == "linux" {
		return selfExe, gone
	}
	if started != "" {
		return started, gone
	}
	return os.Args[0], gone
}

// childEnv drops the variables that describe this process's own start: the
// handoff socket and systemd's socket activation (whose files travel in the
// handoff instead).
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case handoffEnv, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES":
			continue
		}
		out = append(out, kv)
	}
	return out
}
