//go:build linux

package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Timeout bounds every wait for an event. It is long because the machines
// are shared and noisy; a passing test never waits for it.
var Timeout = 60 * time.Second

// Proc is a started process tree: the first generation and every
// generation that shares its stdout.
type Proc struct {
	t     testing.TB
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	lines chan string
	mu    sync.Mutex
	pids  map[int]bool
	done  chan struct{}
	log   strings.Builder
	// waitOnce starts the one Cmd.Wait, which closes exited when it
	// returns, with waitErr.
	waitOnce sync.Once
	exited   chan struct{}
	waitErr  error
	// backlog holds lines no Expect has taken yet, in order: processes
	// of different generations print concurrently.
	backlog []string
}

// Start runs the current test binary in role with the extra environment.
func Start(t testing.TB, role string, env ...string) *Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return StartCommand(t, exec.Command(exe, "-test.run=^$"), append([]string{RoleEnv + "=" + role}, env...)...)
}

// StartCommand runs cmd, whose generations print event lines on stdout.
func StartCommand(t testing.TB, cmd *exec.Cmd, env ...string) *Proc {
	t.Helper()
	// A binary built with -race sleeps a second at exit by default; a
	// race it finds still makes it exit 66.
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, Cmd: cmd, Stdin: in, lines: make(chan string, 1024), pids: map[int]bool{cmd.Process.Pid: true}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			fmt.Fprintln(&p.log, line)
			for _, pid := range linePids(line) {
				p.pids[pid] = true
			}
			p.mu.Unlock()
			p.lines <- line
		}
		close(p.lines)
	}()
	t.Cleanup(p.Cleanup)
	return p
}

// Expect takes the first line not taken yet that starts with prefix, waiting
// for it if need be. It fails the test on a FATAL line or on timeout.
func (p *Proc) Expect(prefix string) string {
	p.t.Helper()
	for i, line := range p.backlog {
		if strings.HasPrefix(line, prefix) {
			p.backlog = append(p.backlog[:i:i], p.backlog[i+1:]...)
			return line
		}
	}
	t := time.NewTimer(Timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("processes exited while waiting for %q; output:\n%s", prefix, p.Output())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
			if strings.HasPrefix(line, "FATAL") {
				p.t.Fatalf("waiting for %q: %s", prefix, line)
			}
			p.backlog = append(p.backlog, line)
		case <-t.C:
			p.t.Fatalf("timeout waiting for %q; output:\n%s", prefix, p.Output())
		}
	}
}

// Output is every line seen so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Pids lists every pid that appeared as pid=N in a line.
func (p *Proc) Pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for pid := range p.pids {
		pids = append(pids, pid)
	}
	return pids
}

// Wait waits for the first generation to exit and returns its exit code.
// Like exec.Cmd.Wait, it then closes the tree's stdout pipe: Expect the
// lines the test needs first.
func (p *Proc) Wait() int {
	p.t.Helper()
	select {
	case <-p.wait():
		if ee, ok := p.waitErr.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if p.waitErr != nil {
			p.t.Fatal(p.waitErr)
		}
		return 0
	case <-time.After(Timeout):
		p.t.Fatalf("timeout waiting for pid %d to exit", p.Cmd.Process.Pid)
		return -1
	}
}

// wait starts the one Cmd.Wait, for Wait and Cleanup both, and returns a
// channel closed when it has returned.
func (p *Proc) wait() <-chan struct{} {
	p.waitOnce.Do(func() {
		p.exited = make(chan struct{})
		go func() {
			p.waitErr = p.Cmd.Wait()
			close(p.exited)
		}()
	})
	return p.exited
}

// Cleanup kills every generation still alive and reaps the ones that became
// ours. The test process is a subreaper (see SetSubreaper), so generations
// orphaned by their parent's exit are reparented to it.
//
// It signals only live processes of this process's tree, through pidfds
// opened before anything is killed: a pid printed earlier may belong by now
// to an unrelated process (the generation exited, was reaped, and its pid
// was reused; pid_max is often 32768).
func (p *Proc) Cleanup() {
	var live []process
	for _, pid := range p.Pids() {
		if fd, ok := openDescendant(pid); ok {
			live = append(live, process{pid, fd})
		}
	}
	p.Stdin.Close()
	for _, l := range live {
		unix.PidfdSendSignal(l.fd, unix.SIGKILL, nil, 0)
	}
	select {
	case <-p.wait():
	case <-time.After(Timeout):
		p.t.Errorf("pid %d still running after SIGKILL", p.Cmd.Process.Pid)
	}
	select {
	case <-p.done:
	case <-time.After(Timeout):
		p.t.Errorf("stdout of the process tree still open after kill")
	}
	for _, l := range live {
		waitGone(p.t, l.pid, l.fd)
		unix.Close(l.fd)
	}
	// Reap this tree's generations that exited on their own and were
	// reparented to us, and only those: a wait for any child would also
	// take the exit of a process that a parallel test is about to wait for
	// ("waitid: no child processes" there).
	for _, pid := range p.Pids() {
		if pid != p.Cmd.Process.Pid {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
}
