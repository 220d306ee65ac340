package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/tableflip"
	unixtransport "github.com/tableflip-go/tableflip/transport/unix"
)

// pidfdTransport is the transport name under which each generation passes
// its successor a pidfd for itself and for every older generation still
// running (companion files: one upgrade only).
const pidfdTransport = "tableflip-control-pidfd"

// Server answers control requests for one generation. Every generation of
// the service creates one with Listen, on the same path: the socket is
// passed on like any other listener, so the path stays bound across
// upgrades and only the serving generation answers.
type Server struct {
	upg    Upgrader
	opts   Options
	log    *zap.Logger
	path   string
	ctx    context.Context
	cancel context.CancelFunc
	self   generationFd
	remove func()
	wg     sync.WaitGroup

	mu        sync.Mutex
	ln        *net.UnixListener // this generation's copy of the socket
	older     []generationFd    // older generations, maybe still draining
	inflight  *call             // the upgrade in progress, whoever started it
	upgraded  *Generation       // this generation has handed over to this one
	accepting bool
	closed    bool
}

type generationFd struct {
	Generation
	fd *os.File // a pidfd
}

// call is one upgrade, shared by every request that arrives while it runs.
type call struct {
	done chan struct{}
	once sync.Once
	pid  int
	err  error
}

func (c *call) finish(pid int, err error) {
	c.once.Do(func() { c.pid, c.err = pid, err; close(c.done) })
}

// Listen creates (first generation) or inherits (later ones) the control
// socket at path and serves it from the moment this generation is ready
// until it has handed over, or stops. Call it before upg.Ready. Close it
// when the program ends.
func Listen(ctx context.Context, upg Upgrader, path string, opts Options) (*Server, error) {
	if opts.Mode == 0 {
		opts.Mode = DefaultMode
	}
	self, err := pidfdOf(os.Getpid(), upg.Generation())
	if err != nil {
		return nil, err
	}
	lc := unixtransport.ListenConfig{Mode: opts.Mode}
	ln, err := lc.Listen(ctx, upg, "unix", path)
	if err != nil {
		self.fd.Close()
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	s := &Server{upg: upg, opts: opts, log: upg.Logger(), path: path, ln: ln, self: self}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.older = inheritOlder(upg)
	s.remove = upg.AddHooks(tableflip.Hooks{
		Ready:     s.start,
		Prepare:   s.prepare,
		Done:      s.done,
		FinalStop: s.stopAccepting,
		Resumed:   s.resumed,
	})
	return s, nil
}

// inheritOlder claims the pidfds the parent passed: its own, then those of
// the generations before it that were still running.
func inheritOlder(upg Upgrader) []generationFd {
	var older []generationFd
	for i := 0; ; i++ {
		f, meta, err := upg.Inherit(pidfdTransport, fmt.Sprint(i))
		if err != nil {
			return older
		}
		var g Generation
		if json.Unmarshal(meta, &g) != nil || g.Pid <= 0 {
			f.Close()
			continue
		}
		older = append(older, generationFd{Generation: g, fd: f})
	}
}

// Upgrade starts an upgrade, or waits for the one in progress, and returns
// its result: what a request from the command gets. A program's SIGHUP
// handler may call it instead of the Upgrader's, so that a signal and a
// request that arrive together make one upgrade.
func (s *Server) Upgrade(ctx context.Context) (pid int, joined bool, err error) {
	s.mu.Lock()
	if s.upgraded != nil {
		pid := s.upgraded.Pid
		s.mu.Unlock()
		return pid, true, nil
	}
	c, joined := s.inflight, true
	if c == nil {
		c, joined = &call{done: make(chan struct{})}, false
		s.inflight = c
		s.wg.Add(1)
		go s.run(c)
	}
	s.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		select {
		case <-c.done: // both: the result wins
		default:
			return 0, joined, ctx.Err()
		}
	}
	return c.pid, joined, c.err
}

// run performs the upgrade of call c.
func (s *Server) run(c *call) {
	defer s.wg.Done()
	ctx := s.ctx
	if s.opts.UpgradeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.UpgradeTimeout)
		defer cancel()
	}
	pid, err := s.upg.Upgrade(ctx)
	if errors.Is(err, tableflip.ErrUpgradeInProgress) {
		// Someone called the Upgrader directly (a signal handler): its Done
		// hook gives this call the same result.
		select {
		case <-c.done:
		case <-s.ctx.Done():
			c.finish(0, err)
		}
		return
	}
	s.finish(c, pid, err)
}

func (s *Server) finish(c *call, pid int, err error) {
	s.mu.Lock()
	if s.inflight == c {
		s.inflight = nil
	}
	s.mu.Unlock()
	c.finish(pid, err)
}

// prepare passes the child pidfds for this generation and each older one
// still running, so that its stop can wait for all of them.
func (s *Server) prepare(ctx context.Context, h *tableflip.Handoff) error {
	s.mu.Lock()
	if s.inflight == nil {
		// An upgrade someone else started: requests join it from now on.
		s.inflight = &call{done: make(chan struct{})}
	}
	gens := append([]generationFd{s.self}, s.older...)
	s.mu.Unlock()
	n := 0
	for _, g := range gens {
		if exited(g.fd) {
			continue
		}
		meta, _ := json.Marshal(g.Generation)
		if err := h.AddFile(pidfdTransport, fmt.Sprint(n), g.fd, meta); err != nil {
			return fmt.Errorf("control: pass pidfd of pid %d: %w", g.Pid, err)
		}
		n++
	}
	return nil
}

// done ends the upgrade in progress for every request waiting on it. After
// a success this generation stops answering: the next one does.
func (s *Server) done(pid int, err error) {
	s.mu.Lock()
	c := s.inflight
	s.inflight = nil
	if err == nil {
		s.upgraded = &Generation{Pid: pid, Generation: s.upg.Generation() + 1}
	}
	s.mu.Unlock()
	if c != nil {
		c.finish(pid, err)
	}
	if err == nil {
		s.stopAccepting()
	}
}

func (s *Server) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.accepting {
		return
	}
	s.accepting = true
	s.wg.Add(1)
	go s.accept(s.ln)
}

// resumed serves again after a take-back (tableflip.Upgrader.Resumed): the
// socket this generation still holds is claimed once more.
func (s *Server) resumed(error) {
	lc := unixtransport.ListenConfig{Mode: s.opts.Mode}
	ln, err := lc.Listen(s.ctx, s.upg, "unix", s.path)
	if err != nil {
		s.log.Error("control: not serving again after the take-back", zap.String("path", s.path), zap.Error(err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.accepting {
		ln.Close()
		return
	}
	s.ln = ln
	s.upgraded = nil
	s.wg.Add(1)
	go s.accept(ln)
}

// stopAccepting closes this generation's copy of the listening socket; the
// socket itself lives on in the next generation (the path is removed at
// the final stop by the unix transport).
func (s *Server) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ln.Close()
}

// Close stops serving requests, ends those in progress and waits for them.
// It does not stop an upgrade that the Upgrader runs.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.remove()
	s.stopAccepting()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.self.fd.Close()
	for _, g := range s.older {
		g.fd.Close()
	}
	s.older = nil
	return nil
}

func (s *Server) accept(ln *net.UnixListener) {
	defer s.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer c.Close()
			s.serve(c)
		}()
	}
}

func (s *Server) serve(c *net.UnixConn) {
	// Reads and writes have deadlines of their own; s.ctx (Close) ends only
	// the wait for an upgrade, so that an upgrade's result is still sent
	// when the program closes the server right after it (an old generation
	// that hands over and exits).
	uid, pid, err := peerCred(c)
	if err != nil {
		s.reply(c, response{Kind: "bad-request", Error: err.Error()}, nil)
		return
	}
	if uid != 0 && uid != os.Geteuid() {
		s.log.Warn("control request refused", zap.Int("pid", os.Getpid()),
			zap.Int("peer_pid", pid), zap.Int("peer_uid", uid))
		s.reply(c, response{Kind: "refused", Error: fmt.Sprintf("uid %d may not control this service (only uid %d and root may)", uid, os.Geteuid())}, nil)
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReaderSize(c, 4096).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	var req request
	if err == nil {
		err = json.Unmarshal([]byte(line), &req)
	}
	if err != nil {
		s.reply(c, response{Kind: "bad-request", Error: "cannot read the request: " + err.Error()}, nil)
		return
	}
	fields := []zap.Field{zap.Int("pid", os.Getpid()), zap.String("op", req.Op), zap.Int("peer_pid", pid), zap.Int("peer_uid", uid)}
	switch req.Op {
	case "upgrade":
		s.log.Info("control request", fields...)
		s.reply(c, s.upgradeFrom(req.From), nil)
	case "status":
		st := s.status()
		s.reply(c, response{OK: true, Pid: st.Serving.Pid, Generation: st.Serving.Generation, Status: &st}, nil)
	case "stop":
		s.log.Info("control request", fields...)
		s.stop(c)
	default:
		s.reply(c, response{Kind: "bad-request", Error: fmt.Sprintf("unknown request %q", strings.TrimSpace(req.Op))}, nil)
	}
}

// upgradeFrom answers an upgrade request. With from set (ExecReload's
// $MAINPID), a request that reaches the generation which that process
// upgraded to is answered with that upgrade's success, not a second
// upgrade: a signal and the command can then race without harm.
func (s *Server) upgradeFrom(from int) response {
	self := os.Getpid()
	if from != 0 && from != self {
		if s.isOlder(from) {
			return response{OK: true, Pid: self, Generation: s.upg.Generation(), Joined: true}
		}
		return response{Kind: "not-main", Error: fmt.Sprintf("pid %d is not the serving generation (pid %d)", from, self)}
	}
	pid, joined, err := s.Upgrade(s.ctx)
	r := upgradeResponse(pid, s.upg.Generation()+1, err)
	r.Joined = joined
	return r
}

func (s *Server) isOlder(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.older {
		if g.Pid == pid {
			return true
		}
	}
	return false
}

func (s *Server) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Serving: s.self.Generation, Upgrading: s.inflight != nil}
	for _, g := range s.older {
		if !exited(g.fd) {
			st.Draining = append(st.Draining, g.Generation)
		}
	}
	return st
}

// stop answers with a pidfd for this generation and every older one still
// running, then stops this generation. The client waits on the pidfds.
func (s *Server) stop(c *net.UnixConn) {
	s.mu.Lock()
	if s.upgraded != nil {
		s.mu.Unlock()
		s.reply(c, response{Kind: "retry", Error: fmt.Sprintf("handed over to pid %d", s.upgraded.Pid)}, nil)
		return
	}
	gens := append([]generationFd{s.self}, s.older...)
	s.mu.Unlock()
	r := response{OK: true, Pid: s.self.Pid, Generation: s.self.Generation.Generation}
	var fds []int
	for _, g := range gens {
		if !exited(g.fd) {
			r.Exiting = append(r.Exiting, g.Generation)
			fds = append(fds, int(g.fd.Fd()))
		}
	}
	if err := s.reply(c, r, fds); err != nil {
		return
	}
	if s.opts.Stop != nil {
		s.opts.Stop()
		return
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
}

func (s *Server) reply(c *net.UnixConn, r response, fds []int) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

func peerCred(c *net.UnixConn) (uid, pid int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if serr != nil {
		return 0, 0, fmt.Errorf("control: SO_PEERCRED: %w", serr)
	}
	return int(cred.Uid), int(cred.Pid), nil
}

func pidfdOf(pid, gen int) (generationFd, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return generationFd{}, fmt.Errorf("control: pidfd_open(%d): %w", pid, err)
	}
	unix.CloseOnExec(fd)
	return generationFd{Generation: Generation{Pid: pid, Generation: gen}, fd: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid))}, nil
}

// exited reports whether the process behind pidfd f has exited.
func exited(f *os.File) bool {
	p := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(p, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}
