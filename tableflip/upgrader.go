package tableflip

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip/internal/seam"
)

// entry is one file in the handoff set. It holds a raw descriptor, not an
// *os.File: wrapping 10,000 inherited sockets in files would register each
// with the poller and cost several system calls apiece for nothing.
type entry struct {
	companion bool // passed for one upgrade only
	transport string
	key       string
	fd        int
	meta      []byte
}

func (e *entry) close() { closeFd(e.fd) }

// Upgrader runs one generation of a service: it claims what the previous
// generation passed, starts the next one on Upgrade, and tells the
// application when to exit. Create one per process with New.
//
// Concurrency: the fields set by New are read-only afterwards. Everything
// else (the state, the inherited and passed files, the hooks) belongs to
// the run goroutine; every method reaches it through do. The run goroutine
// runs only this package's own code: hooks, transports' Unclaimed and
// socket-activation matching (which may resolve names) run on the caller's
// goroutine or the upgrade's, never while the owner waits.
type Upgrader struct {
	opts       Options
	log        *zap.Logger
	generation int
	// standalone is tablefliptest's upgrader: it never has a parent,
	// never upgrades, and keeps no descriptors.
	standalone bool
	// exe is the path this process was started from, resolved in New:
	// later, after a deploy moved the running binary aside, os.Executable
	// would name the moved file.
	exe string

	// parent is the link to the previous generation, nil without one.
	parent     *handoffConn
	parentPid  int
	parentGone chan struct{}
	stateR     *stateReader

	ops   chan func() // served by run
	stopC chan struct{}
	// exitC is the channel Exit returns: closed at a handover or Stop,
	// replaced by an open one when this generation takes the service
	// back. resumeC is the one Resumed returns: replaced by an open one
	// just before exitC closes, closed at a take-back. Only the run
	// goroutine stores them.
	exitC    atomic.Pointer[chan struct{}]
	resumeC  atomic.Pointer[chan struct{}]
	takeBack atomic.Bool   // Resumed was called: take the service back
	done     chan struct{} // closed when run has returned
	stopOnce sync.Once
	stopped  sync.Once // the end of Stop, once: FinalStop hooks, PID file, log
	wg       sync.WaitGroup
	// failReason is Fail's reason, set before stopC closes, for the
	// parent of a generation that fails before Ready.
	failReason error
	// final and finalHooks are set by run before done closes.
	final      bool
	finalHooks []registeredHooks
	prevState  lifeState

	s owned // only the run goroutine touches it
}

// owned is the part of an Upgrader that only its run goroutine touches.
type owned struct {
	state     lifeState
	stopping  bool // Stop was called; run ends once an upgrade in flight has
	inherited map[string]*entry
	passing   map[string]*entry
	// activated holds systemd socket activation's files (activation.go).
	activated *activation
	hooks     []registeredHooks
	nextHook  int
	// retired holds the passed files forgotten while an upgrade runs: it
	// may be sending them, so their descriptors stay open, and their
	// numbers unused by another file, until it ends.
	retired []*entry
	upgrade *upgradeRun // the upgrade in flight
	child   *childProc  // the successor after a successful upgrade
	// reclaim names the passed files that Inherit hands out once more
	// after a take-back, to serve them again.
	reclaim map[string]bool
}

type registeredHooks struct {
	id int
	Hooks
}

// upgradeRun is an upgrade in flight, as the run goroutine tracks it.
type upgradeRun struct {
	cancel  context.CancelFunc
	result  chan upgradeResult // the upgrade goroutine's result
	reply   chan upgradeResult // Upgrade's caller
	started time.Time
}

type upgradeResult struct {
	pid   int
	err   error
	child *childProc
}

// current is the Upgrader of this process that is not stopped yet, if any.
var current atomic.Pointer[Upgrader]

// New creates the Upgrader of this process. If the process was started by
// an Upgrade, New reads the handoff: the parent's files and the start of its
// state. It fails with ErrNotSupported on platforms that cannot pass files,
// and with an error wrapping ErrDuplicate while another Upgrader of this
// process is not stopped: a process is one generation.
func New(opts Options) (*Upgrader, error) {
	if !supported {
		return nil, ErrNotSupported
	}
	u := newUpgrader(opts)
	if !current.CompareAndSwap(nil, u) {
		other := current.Load()
		gen := 0
		if other != nil {
			gen = other.generation
		}
		return nil, fmt.Errorf("%w: this process already runs an Upgrader (generation %d) that is not stopped; a process has one (call Stop on the other first)", ErrDuplicate, gen)
	}
	if v, ok := os.LookupEnv(handoffEnv); ok {
		// Remove it first, so nothing this process spawns believes it is
		// a tableflip child, whatever happens next.
		os.Unsetenv(handoffEnv)
		start := time.Now()
		if err := u.inherit(v); err != nil {
			current.Store(nil)
			u.log.Error("inherit from parent failed", zap.Int("pid", os.Getpid()), zap.Error(err))
			return nil, err
		}
		u.log.Info("inherited from parent",
			zap.Int("pid", os.Getpid()), zap.Int("parent_pid", u.parentPid),
			zap.Int("generation", u.generation), zap.Int("files", len(u.s.inherited)),
			zap.Duration("duration", time.Since(start)))
	} else {
		close(u.parentGone)
	}
	u.log = u.log.With(zap.Int("generation", u.generation))
	u.start()
	u.startSystemd()                        // socket activation and sd_notify: systemd.go
	if err := u.lockPIDFile(); err != nil { // pidfile.go
		u.Fail(err) // tells a parent why, and stops this Upgrader
		return nil, err
	}
	return u, nil
}

// newStandalone is tablefliptest's Upgrader: the real one, without a parent,
// without systemd, keeping no descriptors, and whose Upgrade (once ready)
// returns ErrNotSupported. It works on every platform, and any number of
// them may run in one process.
func newStandalone(log *zap.Logger) *Upgrader {
	u := newUpgrader(Options{Logger: log})
	u.standalone = true
	close(u.parentGone)
	u.log = u.log.With(zap.Int("generation", u.generation))
	u.start()
	return u
}

func newUpgrader(opts Options) *Upgrader {
	if opts.UpgradeTimeout <= 0 {
		opts.UpgradeTimeout = time.Minute
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 5 * time.Second
	}
	u := &Upgrader{
		opts:       opts,
		log:        opts.Logger,
		generation: 1,
		parentGone: make(chan struct{}),
		ops:        make(chan func()),
		stopC:      make(chan struct{}),
		done:       make(chan struct{}),
		s: owned{
			inherited: make(map[string]*entry),
			passing:   make(map[string]*entry),
		},
	}
	if u.log == nil {
		u.log = zap.NewNop()
	}
	u.exe, _ = os.Executable()
	exit, resume := make(chan struct{}), make(chan struct{})
	u.exitC.Store(&exit)
	u.resumeC.Store(&resume)
	return u
}

func (u *Upgrader) start() {
	u.wg.Add(1)
	go u.run()
}

// do runs f on the run goroutine and returns once it has run. It returns
// false, and f does not run, when the upgrader has stopped.
func (u *Upgrader) do(f func()) bool {
	ran := make(chan struct{})
	select {
	case u.ops <- func() { f(); close(ran) }:
		<-ran
		return true
	case <-u.done:
		return false
	}
}

// Generation is 1 for a process started without a parent, and one more than
// its parent's for a child.
func (u *Upgrader) Generation() int { return u.generation }

// Logger is the upgrader's logger.
func (u *Upgrader) Logger() *zap.Logger { return u.log }

// HasParent reports whether this process was started by an Upgrade.
func (u *Upgrader) HasParent() bool { return u.parentPid != 0 }

// Exit is closed when this generation must exit: a successor is ready, or
// Stop was called. Drain, then call Stop. After a take-back (see Resumed),
// Exit returns a new channel, closed at the next handover or Stop.
func (u *Upgrader) Exit() <-chan struct{} { return *u.exitC.Load() }

// Resumed is closed when this generation, after handing over to a
// successor, takes the service back because that successor exited
// without leaving on purpose: it crashed or was killed, after it had
// become ready, while this generation was still alive (draining). The
// first call to Resumed turns the take-back on; without it, a generation
// that has handed over never serves again, and a dead successor leaves
// nobody serving (under systemd, Restart= is what is left).
//
// On a take-back the upgrader is ready again (a new Upgrade may start),
// it writes this process's pid to the PID file, tells systemd that it is
// the main process again (MAINPID=, which needs NotifyAccess=all: with
// the default NotifyAccess=main, systemd refuses a message from a process
// that is not the main one), runs the Resumed hooks and logs an error
// with the successor's pid and exit status. Exit returns a new open
// channel. The application serves again: it listens once more under the
// same names (tcp.Listen, tableflip.Listen...), which hands it new
// duplicates of the sockets this generation still holds, so that the
// connections queued on them meanwhile are served. drain.Run does all of
// this with RunOptions.Resume.
//
// Take the channel once Exit is closed: it belongs to the handover that
// closed Exit, and is replaced by a new one at the next.
func (u *Upgrader) Resumed() <-chan struct{} {
	u.takeBack.Store(true)
	return *u.resumeC.Load()
}

// closeExit closes the current Exit channel, after giving Resumed a new
// one for this handover or stop. Only run calls it.
func (u *Upgrader) closeExit() {
	exit := *u.exitC.Load()
	select {
	case <-exit:
		return
	default:
	}
	resume := make(chan struct{})
	u.resumeC.Store(&resume)
	close(exit)
}

// Inherit claims the file the parent passed under transport and key. See Fds.
func (u *Upgrader) Inherit(transport, key string) (*os.File, []byte, error) {
	name := entryName(transport, key)
	var (
		f         *os.File
		meta      []byte
		err       error
		candidate []candidate
	)
	claim := func() {
		if e, passing := u.s.passing[name]; passing {
			if u.s.reclaim[name] {
				// Taken back: serve it again.
				delete(u.s.reclaim, name)
				f, meta, err = u.dupEntry(e)
				return
			}
			// Claimed, or created and passed, already: the name is taken.
			err = fmt.Errorf("%w: %s %q already claimed or passed", ErrDuplicate, transport, key)
			return
		}
		e, ok := u.s.inherited[name]
		if !ok {
			err = fmt.Errorf("%w: %s %q", ErrNotInherited, transport, key)
			return
		}
		if f, meta, err = u.dupEntry(e); err != nil {
			return
		}
		delete(u.s.inherited, name)
		if e.companion {
			// Passed for one upgrade only: the caller's copy is the only one.
			e.close()
		} else {
			u.s.passing[name] = e
		}
	}
	if !u.do(func() {
		claim()
		if errors.Is(err, ErrNotInherited) && f == nil {
			// First generation: systemd socket activation, matched
			// below, off the run goroutine (it may resolve names).
			candidate = u.s.activated.unclaimed()
		}
	}) {
		return nil, nil, ErrStopped
	}
	if candidate == nil {
		return f, meta, err
	}
	i, how := matchActivated(candidate, transport, key)
	if i < 0 {
		return nil, nil, err
	}
	if !u.do(func() {
		err = nil
		if u.s.activated.take(i, how, u.s.inherited, u.s.passing, transport, key) {
			claim()
		} else {
			err = fmt.Errorf("%w: %s %q", ErrNotInherited, transport, key)
		}
	}) {
		return nil, nil, ErrStopped
	}
	return f, meta, err
}

// dupEntry returns a duplicate of e's descriptor that the caller owns.
func (u *Upgrader) dupEntry(e *entry) (*os.File, []byte, error) {
	fd, err := dupFd(e.fd)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: claim %s %q: %w", ErrNotInherited, e.transport, e.key, err)
	}
	return os.NewFile(uintptr(fd), e.transport+":"+e.key), e.meta, nil
}

// unclaim undoes an Inherit before Ready: the file goes back to the
// inherited set, to be claimed again (or closed by Ready).
func (u *Upgrader) unclaim(transport, key string) {
	name := entryName(transport, key)
	u.do(func() {
		if e, ok := u.s.passing[name]; ok && u.s.state == stateInitial {
			delete(u.s.passing, name)
			u.s.inherited[name] = e
		}
	})
}

// Pass hands c's descriptor to every later generation. See Fds.
func (u *Upgrader) Pass(transport, key string, c syscall.Conn, meta []byte) error {
	if err := checkRecord(record{transport: transport, key: key, meta: meta}); err != nil {
		return err
	}
	name := entryName(transport, key)
	var err error
	if !u.do(func() {
		if _, ok := u.s.passing[name]; ok {
			err = fmt.Errorf("%w: %s %q already passed", ErrDuplicate, transport, key)
			return
		}
		fd := -1
		if !u.standalone {
			if fd, err = dupConn(c, transport+":"+key); err != nil {
				return
			}
		}
		u.s.passing[name] = &entry{transport: transport, key: key, fd: fd, meta: meta}
	}) {
		return ErrStopped
	}
	return err
}

// Inherited lists the unclaimed files the parent passed under transport.
// See Fds.
func (u *Upgrader) Inherited(transport string) []string {
	var keys []string
	u.do(func() {
		for _, e := range u.s.inherited {
			if e.transport == transport {
				keys = append(keys, e.key)
			}
		}
	})
	slices.Sort(keys)
	return keys
}

// Forget stops passing the file under transport and key. See Fds.
func (u *Upgrader) Forget(transport, key string) {
	name := entryName(transport, key)
	u.do(func() {
		e, ok := u.s.passing[name]
		if !ok {
			return
		}
		delete(u.s.passing, name)
		if u.s.upgrade != nil {
			u.s.retired = append(u.s.retired, e)
		} else {
			e.close()
		}
	})
}

// AddHooks registers h. See Fds.
func (u *Upgrader) AddHooks(h Hooks) (remove func()) {
	id := -1
	u.do(func() {
		id = u.s.nextHook
		u.s.nextHook++
		u.s.hooks = append(u.s.hooks, registeredHooks{id: id, Hooks: h})
	})
	return func() {
		u.do(func() {
			u.s.hooks = slices.DeleteFunc(u.s.hooks, func(r registeredHooks) bool { return r.id == id })
		})
	}
}

// hookList is a copy of the hooks, in the order they were added, to run
// off the run goroutine.
func (u *Upgrader) hookList() []registeredHooks {
	var hs []registeredHooks
	u.do(func() { hs = slices.Clone(u.s.hooks) })
	return hs
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
	u.stopped.Do(func() {
		if u.final {
			for _, h := range u.finalHooks {
				if h.FinalStop != nil {
					h.FinalStop()
				}
			}
			if u.opts.PIDFile != "" && u.prevState != stateInitial {
				if err := removePIDFile(u.opts.PIDFile, os.Getpid()); err != nil {
					u.log.Error("pid file left behind", zap.Int("pid", os.Getpid()), zap.Error(err))
				}
			}
		}
		u.log.Info("stopped", zap.Int("pid", os.Getpid()), zap.Bool("final", u.final))
		current.CompareAndSwap(u, nil)
	})
	u.wg.Wait()
}

// run owns the lifecycle state and the files: every change to them
// happens here.
func (u *Upgrader) run() {
	defer u.wg.Done()
	defer close(u.done)
	stopC := u.stopC
	for {
		var result chan upgradeResult
		if u.s.upgrade != nil {
			result = u.s.upgrade.result
		}
		select {
		case op := <-u.ops:
			op()

		case r := <-result:
			up := u.s.upgrade
			up.cancel()
			u.s.upgrade = nil
			if u.s.stopping && r.err != nil {
				// The child was killed and reaped.
				r.err = fmt.Errorf("%w during the upgrade: %w", ErrStopped, r.err)
			}
			// A child acknowledged just before a Stop's cancel is the
			// service now: that Stop is then not the final one.
			u.finishUpgrade(r, up.started)
			up.reply <- upgradeResult{pid: r.pid, err: r.err}
			if u.s.stopping {
				u.shutdown()
				return
			}

		case <-stopC:
			stopC = nil
			u.s.stopping = true
			if u.s.upgrade != nil {
				u.s.upgrade.cancel() // shut down when it has ended
				continue
			}
			u.shutdown()
			return
		}
	}
}

// shutdown runs on the run goroutine at Stop.
func (u *Upgrader) shutdown() {
	prev := u.s.state
	u.s.state = stateStopped
	u.prevState = prev
	// A generation that hands over, or a child that never became ready
	// (its parent serves on), is not the last: nothing it shares with
	// them, a socket path, a PID file, may go.
	u.final = prev != stateUpgraded && !(prev == stateInitial && u.parent != nil)
	u.finalHooks = slices.Clone(u.s.hooks)
	u.s.activated.closeUnclaimed()
	u.closeExit()
	for name, e := range u.s.inherited {
		e.close()
		delete(u.s.inherited, name)
	}
	for name, e := range u.s.passing {
		e.close()
		delete(u.s.passing, name)
	}
	if u.s.child != nil {
		// Closing our end tells the child's WaitForParent we are done.
		u.s.child.conn.Close()
	}
	if u.parent != nil {
		if prev == stateReady {
			// A deliberate stop of the service (an upgraded
			// generation said so at its handover): the parent, if
			// still draining, must not take the service back.
			u.parent.writeFrame(frameLeave, nil, nil)
		}
		if prev == stateInitial {
			// Stopped before Ready: the parent must not wait for us.
			reason := "tableflip: child stopped before it was ready"
			if u.failReason != nil {
				reason = u.failReason.Error()
			}
			u.parent.writeFrame(frameFail, []byte(reason), nil)
		}
		u.parent.Close()
	}
}

func init() {
	seam.NewStandalone = func(log *zap.Logger) any { return newStandalone(log) }
}
