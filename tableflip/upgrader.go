package tableflip

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
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
type Upgrader struct {
	opts       Options
	log        *zap.Logger
	generation int

	// parent is the link to the previous generation, nil without one.
	parent     *handoffConn
	parentPid  int
	parentGone chan struct{}
	stateR     *stateReader
	// activated holds systemd socket activation's files (activation.go).
	activated *activation

	mu        sync.Mutex // guards the fields below
	inherited map[string]*entry
	passing   map[string]*entry
	hooks     []registeredHooks
	nextHook  int
	state     State
	// sending is true while an upgrade sends the passed files without the
	// lock held: Forget then leaves the descriptor open, in forgotten,
	// until the send is over, so that its number cannot be reused for
	// another file that the child would get under this name.
	sending   bool
	forgotten []*entry

	// lifecycle requests, served by run, the one goroutine that owns
	// the state transitions.
	readyC   chan chan error
	upgradeC chan upgradeRequest
	stopC    chan struct{}
	exitC    chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	// failReason is Fail's reason, set before stopC closes, for the
	// parent of a generation that fails before Ready.
	failReason error

	// child is the successor after a successful upgrade.
	child *childProc
	// exe is the path this process was started from, resolved in New:
	// later, after a deploy moved the running binary aside, os.Executable
	// would name the moved file.
	exe string
}

type registeredHooks struct {
	id int
	Hooks
}

type upgradeRequest struct {
	ctx   context.Context
	reply chan upgradeResult
}

type upgradeResult struct {
	pid   int
	err   error
	child *childProc
}

// New creates the Upgrader of this process. If the process was started by
// an Upgrade, New reads the handoff: the parent's files and the start of its
// state. It fails with ErrNotSupported on platforms that cannot pass files.
func New(opts Options) (*Upgrader, error) {
	if !supported {
		return nil, ErrNotSupported
	}
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
		inherited:  make(map[string]*entry),
		passing:    make(map[string]*entry),
		parentGone: make(chan struct{}),
		readyC:     make(chan chan error),
		upgradeC:   make(chan upgradeRequest),
		stopC:      make(chan struct{}),
		exitC:      make(chan struct{}),
		done:       make(chan struct{}),
	}
	if u.log == nil {
		u.log = zap.NewNop()
	}
	u.exe, _ = os.Executable()
	if v, ok := os.LookupEnv(handoffEnv); ok {
		// Remove it first, so nothing this process spawns believes it is
		// a tableflip child, whatever happens next.
		os.Unsetenv(handoffEnv)
		start := time.Now()
		if err := u.inherit(v); err != nil {
			u.log.Error("inherit from parent failed", zap.Int("pid", os.Getpid()), zap.Error(err))
			return nil, err
		}
		u.log.Info("inherited from parent",
			zap.Int("pid", os.Getpid()), zap.Int("parent_pid", u.parentPid),
			zap.Int("generation", u.generation), zap.Int("files", len(u.inherited)),
			zap.Duration("duration", time.Since(start)))
	} else {
		close(u.parentGone)
	}
	u.log = u.log.With(zap.Int("generation", u.generation))
	u.startSystemd() // socket activation and sd_notify: systemd.go
	u.wg.Add(1)
	go u.run()
	return u, nil
}

// Generation is 1 for a process started without a parent, and one more than
// its parent's for a child.
func (u *Upgrader) Generation() int { return u.generation }

// Logger is the upgrader's logger.
func (u *Upgrader) Logger() *zap.Logger { return u.log }

// HasParent reports whether this process was started by an Upgrade.
func (u *Upgrader) HasParent() bool { return u.parentPid != 0 }

// State is where the upgrader is in its life.
func (u *Upgrader) State() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.state
}

func (u *Upgrader) setState(s State) {
	u.mu.Lock()
	u.state = s
	u.mu.Unlock()
}

// Exit is closed when this generation must exit: a successor is ready, or
// Stop was called. Drain, then call Stop.
func (u *Upgrader) Exit() <-chan struct{} { return u.exitC }

// Inherit claims the file the parent passed under transport and key. See Fds.
func (u *Upgrader) Inherit(transport, key string) (*os.File, []byte, error) {
	name := entryName(transport, key)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state == StateStopped {
		return nil, nil, ErrStopped
	}
	if _, passing := u.passing[name]; passing {
		// Claimed, or created and passed, already: the name is taken.
		return nil, nil, fmt.Errorf("%w: %s %q already claimed or passed", ErrDuplicate, transport, key)
	}
	u.activated.claim(u.inherited, u.passing, transport, key) // first generation: systemd socket activation
	e, ok := u.inherited[name]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s %q", ErrNotInherited, transport, key)
	}
	fd, err := dupFd(e.fd)
	if err != nil {
		return nil, nil, fmt.Errorf("tableflip: claim %s %q: %w", transport, key, err)
	}
	f := os.NewFile(uintptr(fd), transport+":"+key)
	delete(u.inherited, name)
	if e.companion {
		// Passed for one upgrade only: the caller's copy is the only one.
		e.close()
	} else {
		u.passing[name] = e
	}
	return f, e.meta, nil
}

// Pass hands c's descriptor to every later generation. See Fds.
func (u *Upgrader) Pass(transport, key string, c syscall.Conn, meta []byte) error {
	if err := checkRecord(record{transport: transport, key: key, meta: meta}); err != nil {
		return err
	}
	name := entryName(transport, key)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state == StateStopped {
		return ErrStopped
	}
	if _, ok := u.passing[name]; ok {
		return fmt.Errorf("%w: %s %q already passed", ErrDuplicate, transport, key)
	}
	fd, err := dupConn(c, transport+":"+key)
	if err != nil {
		return err
	}
	u.passing[name] = &entry{transport: transport, key: key, fd: fd, meta: meta}
	return nil
}

// Forget stops passing the file under transport and key. See Fds.
func (u *Upgrader) Forget(transport, key string) {
	name := entryName(transport, key)
	u.mu.Lock()
	defer u.mu.Unlock()
	if e, ok := u.passing[name]; ok {
		delete(u.passing, name)
		if u.sending {
			u.forgotten = append(u.forgotten, e)
		} else {
			e.close()
		}
	}
}

// AddHooks registers h. See Fds.
func (u *Upgrader) AddHooks(h Hooks) (remove func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	id := u.nextHook
	u.nextHook++
	u.hooks = append(u.hooks, registeredHooks{id: id, Hooks: h})
	return func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.hooks = slices.DeleteFunc(u.hooks, func(r registeredHooks) bool { return r.id == id })
	}
}

// hookList is a copy of the hooks, in the order they were added, to run
// without the lock held.
func (u *Upgrader) hookList() []registeredHooks {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.hooks)
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
			removePIDFile(u.opts.PIDFile, os.Getpid())
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
