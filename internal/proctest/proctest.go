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
	"syscall"
	"testing"
	"time"
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
			p.mu.Unlock()
			for _, f := range strings.Fields(line) {
				var pid int
				if _, err := fmt.Sscanf(f, "pid=%d", &pid); err == nil {
					p.mu.Lock()
					p.pids[pid] = true
					p.mu.Unlock()
				}
			}
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
func (p *Proc) Wait() int {
	p.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.Cmd.Wait() }()
	select {
	case err := <-errc:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return 0
	case <-time.After(Timeout):
		p.t.Fatalf("timeout waiting for pid %d to exit", p.Cmd.Process.Pid)
		return -1
	}
}

// Cleanup kills every generation still alive and reaps the ones that became
// ours. The test process is a subreaper (see SetSubreaper), so generations
// orphaned by their parent's exit are reparented to it.
func (p *Proc) Cleanup() {
	p.Stdin.Close()
	for _, pid := range p.Pids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if p.Cmd.ProcessState == nil {
		p.Cmd.Wait()
	}
	select {
	case <-p.done:
	case <-time.After(Timeout):
		p.t.Errorf("stdout of the process tree still open after kill")
	}
	for _, pid := range p.Pids() {
		WaitGone(p.t, pid)
	}
	ReapOrphans()
}
