//go:build systemdtest && linux

package systemdtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// machine is a systemd booted as PID 1 of a private pid and mount
// namespace by boot.sh, driven with nsenter.
type machine struct {
	t      testing.TB
	cmd    *exec.Cmd // setpriv → unshare, whose child is PID 1
	pid1   int       // systemd's pid on the host
	cgroup string    // the fresh cgroup the namespace lives in
	mu     sync.Mutex
	out    bytes.Buffer // boot.sh's output
}

const unifiedRoot = "/sys/fs/cgroup/unified"

// cgroup2Root is where the host's cgroup2 hierarchy is mounted.
func cgroup2Root() (string, error) {
	for _, p := range []string{unifiedRoot, "/sys/fs/cgroup"} {
		var st syscall.Statfs_t
		if syscall.Statfs(p, &st) == nil && st.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
			return p, nil
		}
	}
	return "", errors.New("no cgroup2 hierarchy mounted")
}

// namespacesPermitted says why the tests cannot run here, if they cannot.
func namespacesPermitted() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	out, err := exec.Command("unshare", "--pid", "--fork", "--mount", "--cgroup", "--propagation", "private", "--mount-proc", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("unshare --pid --mount --cgroup: %v: %s", err, out)
	}
	return nil
}

// boot starts systemd from tree ("" for the installed one) with the
// binaries and units of stage, and waits until it has finished starting.
func boot(t testing.TB, name, tree, stage string) *machine {
	t.Helper()
	root, err := cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	hostNS, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	bootSh, err := filepath.Abs("boot.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := &machine{t: t, cgroup: filepath.Join(root, fmt.Sprintf("tftest-%s-%d", name, os.Getpid()))}
	if err := os.Mkdir(m.cgroup, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.removeCgroup)

	// The shell moves itself into the fresh cgroup, so that the cgroup
	// namespace unshare makes has it as its (empty) root, then becomes
	// setpriv and unshare: if this test dies, unshare dies (pdeathsig), and
	// its child, systemd, with it (--kill-child).
	m.cmd = exec.Command("sh", "-c", `echo $$ >"$0/cgroup.procs" && exec "$@"`, m.cgroup,
		"setpriv", "--pdeathsig", "KILL", "--",
		"unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--uts", "--ipc", "--cgroup",
		"--propagation", "private", "--mount-proc", "--",
		"env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "container=tftest",
		"TFTEST_HOST_MNTNS="+hostNS, "TFTEST_STAGE="+stage, "TFTEST_SYSTEMD_TREE="+tree,
		"/bin/bash", bootSh)
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stderr = m.cmd.Stdout
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.kill)

	fenced := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			m.mu.Lock()
			m.out.WriteString(sc.Text() + "\n")
			m.mu.Unlock()
			if !sent && strings.Contains(sc.Text(), "tftest-boot: fenced") {
				fenced <- true
				sent = true
			}
		}
		if !sent {
			fenced <- false
		}
	}()
	select {
	case ok := <-fenced:
		if !ok {
			t.Fatalf("boot.sh stopped before systemd started:\n%s", m.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("boot.sh did not finish in 30s:\n%s", m.output())
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", m.cmd.Process.Pid, m.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if m.pid1, err = strconv.Atoi(strings.TrimSpace(string(children))); err != nil {
		t.Fatalf("unshare's child: %q: %v", children, err)
	}
	m.waitRunning(60 * time.Second)
	return m
}

func (m *machine) output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.String()
}

// waitRunning waits until systemd has finished booting: systemctl's
// is-system-running --wait, once its bus socket exists.
func (m *machine) waitRunning(limit time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		out, err := m.run(limit, "systemctl", "is-system-running", "--wait")
		state := strings.TrimSpace(out)
		if state == "running" || state == "degraded" {
			if state == "degraded" {
				failed, _ := m.run(10*time.Second, "systemctl", "--failed", "--no-legend")
				m.t.Logf("systemd is degraded (a masked unit's dependency); failed units:\n%s", failed)
			}
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("systemd did not come up: %q %v\n%s", out, err, m.output())
		}
		// Not yet listening on its bus: nothing to wait on but time.
		time.Sleep(50 * time.Millisecond)
	}
}

// run runs a command inside the namespace.
func (m *machine) run(limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.pid1), "-m", "-p", "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// systemctl runs systemctl in the namespace, bounded by two minutes.
func (m *machine) systemctl(args ...string) (string, error) {
	return m.run(2*time.Minute, append([]string{"systemctl"}, args...)...)
}

func (m *machine) show(unit, prop string) string {
	out, _ := m.systemctl("show", "-p", prop, "--value", unit)
	return strings.TrimSpace(out)
}

// journal is everything the journal holds about unit, systemd's own lines
// included.
func (m *machine) journal(unit string) string {
	m.run(30*time.Second, "journalctl", "--sync")
	out, _ := m.run(30*time.Second, "journalctl", "--no-pager", "-o", "short-monotonic", "-u", unit)
	return out
}

// journalIdent is the journal of one SyslogIdentifier.
func (m *machine) journalIdent(id string) string {
	out, _ := m.run(30*time.Second, "journalctl", "--no-pager", "-o", "short-monotonic", "-t", id)
	return out
}

// file is path inside the namespace, seen from the host.
func (m *machine) file(path string) string {
	return fmt.Sprintf("/proc/%d/root%s", m.pid1, path)
}

// kill ends the namespace by the pid of the process this test started, and
// waits for it.
func (m *machine) kill() {
	if m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGKILL)
	m.cmd.Wait()
	if m.pid1 > 0 {
		// unshare's --kill-child SIGKILLs PID 1, which ends the namespace.
		for i := 0; i < 200 && syscall.Kill(m.pid1, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// removeCgroup removes the fresh cgroup and what systemd made under it,
// once its processes have gone.
func (m *machine) removeCgroup() {
	var dirs []string
	filepath.WalkDir(m.cgroup, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		for try := 0; try < 100; try++ {
			if err := os.Remove(dirs[i]); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
