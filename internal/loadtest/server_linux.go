//go:build linux

package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Server drives a running server that upgrades itself on SIGHUP and writes
// the pid of its serving generation to a pid file (by rename, as tableflip
// does). Get one from StartServer or Attach. Its methods are meant to be
// called from one goroutine.
type Server struct {
	pidFile string
	watch   *pidWatcher
	cmd     *exec.Cmd // the first generation when StartServer started it
	pid     int       // the serving generation
	pidfd   int       // pidfd of pid
	gens    []int
	gone    map[int]bool // pids seen exit: Close must not signal them again
	copies  chan error   // one per output pipe we copy
	ncopies int
	closed  bool
}

// StartServer starts cmd, whose generations write their pid to pidFile,
// and waits until pidFile names cmd's process (the first generation is
// ready). The Server owns the process tree: Close kills what is left.
//
// Do not call cmd.Wait: the Server reaps the first generation itself. If
// cmd.Stdout or cmd.Stderr is a writer that is not an *os.File, the Server
// copies into it through a pipe of its own until every generation has
// exited (exec.Cmd's own copying would end only when Wait returns).
//
// StartServer makes this process a child subreaper (process-wide), so
// that generations orphaned by their parent's exit become its children and
// their exit status can be known.
func StartServer(ctx context.Context, cmd *exec.Cmd, pidFile string) (*Server, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("loadtest: become a child subreaper: %w", err)
	}
	w, err := newPIDWatcher(pidFile)
	if err != nil {
		return nil, err
	}
	s := &Server{pidFile: pidFile, watch: w, cmd: cmd, pidfd: -1, gone: map[int]bool{}, copies: make(chan error, 2)}
	var closeAfterStart []*os.File
	for _, out := range []*io.Writer{&cmd.Stdout, &cmd.Stderr} {
		if *out == nil {
			continue
		}
		if _, ok := (*out).(*os.File); ok {
			continue // a pipe of ours already, or the caller's file
		}
		r, pw, err := os.Pipe()
		if err != nil {
			for _, f := range closeAfterStart {
				f.Close()
			}
			s.Close()
			return nil, fmt.Errorf("loadtest: output pipe: %w", err)
		}
		dst := *out
		if out == &cmd.Stdout && sameWriter(cmd.Stdout, cmd.Stderr) {
			cmd.Stderr = pw // one pipe for both, as exec.Cmd does
		}
		*out = pw
		closeAfterStart = append(closeAfterStart, pw)
		s.ncopies++
		go func() {
			_, err := io.Copy(dst, r)
			r.Close()
			s.copies <- err
		}()
	}
	err = cmd.Start()
	for _, f := range closeAfterStart {
		f.Close()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("loadtest: start server: %w", err)
	}
	if err := s.attach(ctx, cmd.Process.Pid); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Attach drives a server started elsewhere (for example by
// internal/proctest), given the pid of its first generation. It waits
// until pidFile names that pid. The first generation is not reaped by the
// Server (its starter owns it); later ones are, as the Server makes this
// process a child subreaper.
func Attach(ctx context.Context, pid int, pidFile string) (*Server, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("loadtest: become a child subreaper: %w", err)
	}
	w, err := newPIDWatcher(pidFile)
	if err != nil {
		return nil, err
	}
	s := &Server{pidFile: pidFile, watch: w, pidfd: -1, gone: map[int]bool{}, copies: make(chan error)}
	if err := s.attach(ctx, pid); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) attach(ctx context.Context, pid int) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("loadtest: pidfd of %d: %w", pid, err)
	}
	s.pid, s.pidfd, s.gens = pid, pidfd, []int{pid}
	got, exited, err := s.watch.wait(ctx, func(p int) bool { return p == pid }, pidfd)
	switch {
	case exited:
		e := s.reap(pid, pidfd)
		s.pidfd = -1
		return fmt.Errorf("%w: server exited before it was ready: %v", ErrExited, e)
	case err != nil:
		return fmt.Errorf("loadtest: server pid %d not ready: pid file %s names %d: %w", pid, s.pidFile, got, err)
	}
	return nil
}

// PID is the pid of the serving generation.
func (s *Server) PID() int { return s.pid }

// Generations lists the pid of every generation seen, first one first.
func (s *Server) Generations() []int { return append([]int(nil), s.gens...) }

// Upgrade sends SIGHUP to the serving generation, waits until the pid file
// names a new pid, then waits until the old generation has exited (it
// drains first). An error says which step failed. If the upgrade fails
// inside the server, the pid file never changes and Upgrade returns when
// ctx ends (DefaultTimeout without a deadline); if the serving generation
// exits instead, Upgrade returns at once with its exit status.
func (s *Server) Upgrade(ctx context.Context) (Upgrade, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if s.closed {
		return Upgrade{}, errors.New("loadtest: server closed")
	}
	old, oldfd := s.pid, s.pidfd
	up := Upgrade{OldPID: old}
	start := time.Now()
	if err := unix.PidfdSendSignal(oldfd, unix.SIGHUP, nil, 0); err != nil {
		return up, fmt.Errorf("loadtest: SIGHUP pid %d: %w", old, err)
	}
	pid, exited, err := s.watch.wait(ctx, func(p int) bool { return p != 0 && p != old }, oldfd)
	if exited {
		up.OldExit = s.reap(old, oldfd)
		s.pidfd = -1
		return up, fmt.Errorf("%w: upgrade of pid %d: the serving generation exited instead: %v", ErrExited, old, up.OldExit)
	}
	if err != nil {
		return up, fmt.Errorf("loadtest: upgrade of pid %d: pid file %s still names %d after %v: %w",
			old, s.pidFile, pid, time.Since(start).Round(time.Millisecond), err)
	}
	up.Latency = time.Since(start)
	up.NewPID = pid
	newfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return up, fmt.Errorf("loadtest: new generation %d: %w", pid, err)
	}
	s.pid, s.pidfd = pid, newfd
	s.gens = append(s.gens, pid)
	ready, err := waitReadable(ctx, oldfd)
	if err != nil || !ready {
		return up, fmt.Errorf("loadtest: old generation %d still running %v after the upgrade: %w",
			old, time.Since(start).Round(time.Millisecond), err)
	}
	up.Exited = time.Since(start)
	up.OldExit = s.reap(old, oldfd)
	return up, nil
}

// Stop sends SIGTERM to the serving generation and waits for it to exit.
func (s *Server) Stop(ctx context.Context) (Exit, error) {
	return s.Signal(ctx, unix.SIGTERM)
}

// Signal sends sig to the serving generation and waits for it to exit.
func (s *Server) Signal(ctx context.Context, sig syscall.Signal) (Exit, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if s.pidfd < 0 {
		return Exit{}, errors.New("loadtest: no serving generation")
	}
	if err := unix.PidfdSendSignal(s.pidfd, sig, nil, 0); err != nil {
		return Exit{}, fmt.Errorf("loadtest: %v pid %d: %w", sig, s.pid, err)
	}
	ready, err := waitReadable(ctx, s.pidfd)
	if err != nil || !ready {
		return Exit{PID: s.pid, Code: -1}, fmt.Errorf("loadtest: pid %d still running after %v: %w", s.pid, sig, err)
	}
	e := s.reap(s.pid, s.pidfd)
	s.pidfd = -1
	return e, nil
}

// reap closes pidfd and, when pid is our child, reaps it. pid has exited.
func (s *Server) reap(pid, pidfd int) Exit {
	defer unix.Close(pidfd)
	s.gone[pid] = true
	e := Exit{PID: pid, Code: -1}
	if s.cmd != nil && pid == s.cmd.Process.Pid {
		s.cmd.Wait()
		e.Reaped = true
		if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
			e.fill(ws)
		}
		return e
	}
	if s.cmd == nil && len(s.gens) > 0 && pid == s.gens[0] {
		return e // Attach: the starter reaps the first generation
	}
	var ws unix.WaitStatus
	if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
		e.Reaped = true
		e.fill(syscall.WaitStatus(ws))
	}
	return e
}

func (e *Exit) fill(ws syscall.WaitStatus) {
	switch {
	case ws.Exited():
		e.Code = ws.ExitStatus()
	case ws.Signaled():
		e.Signal = ws.Signal()
	}
}

// Close kills every generation still running and everything they started
// (SIGKILL), reaps what is ours, and releases the Server. It is idempotent
// and meant for cleanup: after a successful Stop nothing is left to kill.
func (s *Server) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var pids []int
	seen := map[int]bool{}
	var walk func(pid int)
	walk = func(pid int) {
		if seen[pid] || s.gone[pid] {
			return // a gone pid may be another process's by now
		}
		seen[pid] = true
		pids = append(pids, pid)
		for _, c := range childrenOf(pid) {
			walk(c)
		}
	}
	for _, pid := range s.gens {
		walk(pid)
	}
	// A generation that became ready while nobody was watching.
	if pid, err := ReadPIDFile(s.pidFile); err == nil && pid > 0 && !seen[pid] && s.isDescendant(pid) {
		walk(pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	var errs []error
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone and reaped
		}
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		if ready, err := waitReadable(ctx, fd); err != nil || !ready {
			errs = append(errs, fmt.Errorf("loadtest: pid %d survived SIGKILL: %w", pid, err))
		}
		if pid == s.pid && s.pidfd >= 0 {
			unix.Close(s.pidfd)
			s.pidfd = -1
		}
		s.reap(pid, fd)
	}
	if s.pidfd >= 0 {
		unix.Close(s.pidfd)
		s.pidfd = -1
	}
	if s.cmd != nil && s.cmd.ProcessState == nil && s.cmd.Process != nil {
		s.cmd.Wait()
	}
	for range s.ncopies {
		select {
		case <-s.copies:
		case <-ctx.Done():
			errs = append(errs, errors.New("loadtest: server output still open after every generation was killed"))
		}
	}
	s.watch.close()
	return errors.Join(errs...)
}

// sameWriter is a == b, false where the writers are not comparable.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() { recover() }()
	return a == b
}

// isDescendant reports whether pid is a child of this process (generations
// are reparented to it) or of one of the known generations, so that Close
// never kills an unrelated process that a stale pid file names.
func (s *Server) isDescendant(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return false
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid == os.Getpid() || slices.Contains(s.gens, ppid)
}

// childrenOf lists pid's children, from /proc/<pid>/task/*/children.
func childrenOf(pid int) []int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// pidWatcher watches the directory of a pid file with inotify, so that a
// wait for a new pid wakes up on the rename that writes it.
type pidWatcher struct {
	path string
	fd   int
}

func newPIDWatcher(path string) (*pidWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("loadtest: inotify: %w", err)
	}
	dir := filepath.Dir(path)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_CREATE|unix.IN_DELETE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("loadtest: watch %s: %w", dir, err)
	}
	return &pidWatcher{path: path, fd: fd}, nil
}

func (w *pidWatcher) close() { unix.Close(w.fd) }

// wait returns once the pid file names a pid for which ok is true, or
// exitfd (a pidfd) becomes readable (exited is then true), or ctx ends. It
// returns the last pid read.
func (w *pidWatcher) wait(ctx context.Context, ok func(pid int) bool, exitfd int) (pid int, exited bool, err error) {
	buf := make([]byte, 4096)
	for {
		// Drain the events first, then read: a rename after the read
		// leaves an event for the next poll.
		for {
			if _, err := unix.Read(w.fd, buf); err != nil {
				break
			}
		}
		pid, err = ReadPIDFile(w.path)
		if err != nil {
			return pid, false, err
		}
		if ok(pid) {
			return pid, false, nil
		}
		ready, err := pollFds(ctx, w.fd, exitfd)
		if err != nil {
			return pid, false, err
		}
		if ready[1] {
			// The process exited, maybe just after a rename that this
			// poll reported at the same time: read the file once more.
			if pid, err = ReadPIDFile(w.path); err == nil && ok(pid) {
				return pid, false, nil
			}
			return pid, true, nil
		}
	}
}

// waitReadable waits until fd is readable (a pidfd: its process exited).
func waitReadable(ctx context.Context, fd int) (bool, error) {
	ready, err := pollFds(ctx, fd)
	if err != nil {
		return false, err
	}
	return ready[0], nil
}

// pollFds waits until one of fds is readable or ctx ends (then it returns
// ctx's cause). A negative fd is ignored.
func pollFds(ctx context.Context, fds ...int) ([]bool, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("loadtest: eventfd: %w", err)
	}
	defer unix.Close(wake)
	stop := context.AfterFunc(ctx, func() {
		unix.Write(wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	})
	defer stop()
	pfds := make([]unix.PollFd, 0, len(fds)+1)
	for _, fd := range fds {
		pfds = append(pfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	pfds = append(pfds, unix.PollFd{Fd: int32(wake), Events: unix.POLLIN})
	for {
		timeout := -1
		if d, ok := ctx.Deadline(); ok {
			timeout = int(time.Until(d)/time.Millisecond) + 1
			if timeout < 0 {
				timeout = 0
			}
		}
		n, err := unix.Poll(pfds, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("loadtest: poll: %w", err)
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if n == 0 {
			continue // deadline not quite there yet: ctx.Err will say
		}
		ready := make([]bool, len(fds))
		some := false
		for i := range fds {
			ready[i] = pfds[i].Revents != 0
			some = some || ready[i]
		}
		if some {
			return ready, nil
		}
	}
}
