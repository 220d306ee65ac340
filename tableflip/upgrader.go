package tableflip

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
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
	if err := u.lockPIDFile(); err != nil { // pidfile.go
		u.Fail(err)
		return nil, err
	}
	return u, nil
}

// inherit reads the parent's hello and files from the handoff socket.
func (u *Upgrader) inherit(env string) error {
	fd, err := strconv.Atoi(env)
	if err != nil || fd < 0 {
		return fmt.Errorf("tableflip: %s=%q is not a file descriptor number", handoffEnv, env)
	}
	hc, err := openHandoff(fd)
	if err != nil {
		return err
	}
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
		return fmt.Errorf("tableflip: parent refused the handoff: %s", f.payload)
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
				if _, dup := u.inherited[name]; dup {
					err = protoErr("file %s:%s passed twice", r.transport, r.key)
					break
				}
				u.inherited[name] = &entry{transport: r.transport, key: r.key, fd: fds[i], meta: r.meta, companion: r.flags&flagCompanion != 0}
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
	for name, e := range u.inherited {
		e.close()
		delete(u.inherited, name)
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
			s.err = fmt.Errorf("tableflip: parent aborted the handoff: %s", f.payload)
		default:
			s.err = protoErr("unexpected frame %q in the state stream", f.typ)
			s.hc.writeFrame(frameFail, []byte(s.err.Error()), nil)
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Generation is 1 for a process started without a parent, and one more than
// its parent's for a child.
func (u *Upgrader) Generation() int { return u.generation }

// Logger is the upgrader's logger.
func (u *Upgrader) Logger() *zap.Logger { return u.log }

// HasParent reports whether this process was started by an Upgrade.
func (u *Upgrader) HasParent() bool { return u.parentPid != 0 }

// LoadState returns the application state the parent wrote with
// Options.SaveState. Read it before Ready; Ready discards what is left. It is
// empty without a parent.
func (u *Upgrader) LoadState() io.Reader {
	if u.stateR == nil {
		return bytes.NewReader(nil)
	}
	return u.stateR
}

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

// Ready signals that this generation serves: inherited files nobody claimed
// are closed, the PID file is written, and the parent's Upgrade returns our
// pid. A Ready that fails tells the parent why.
func (u *Upgrader) Ready() error {
	reply := make(chan error, 1)
	select {
	case u.readyC <- reply:
		return <-reply
	case <-u.done:
		return ErrStopped
	}
}

// Fail stops the upgrader, and tells the parent that this generation cannot
// start: its Upgrade returns a *ChildError whose Reason is reason's message.
// After Ready, or without a parent, it only stops.
func (u *Upgrader) Fail(reason error) {
	u.stop(reason)
}
