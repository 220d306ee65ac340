package tableflip_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tableflip-go/tableflip/internal/proctest"
)

// server is a running process tree of serverMain generations.
type server struct {
	t    *testing.T
	p    *proctest.Proc
	addr string
	pid  int
}

func startServer(t *testing.T, env ...string) *server {
	t.Helper()
	p := proctest.Start(t, "server", env...)
	s := &server{t: t, p: p}
	s.ready(p.Expect("READY "))
	return s
}

func field(line, name string) string { return proctest.Fields(line)[name] }

func (s *server) ready(line string) string {
	s.addr = field(line, "addr")
	s.pid, _ = strconv.Atoi(field(line, "pid"))
	return line
}

func (s *server) get(path string) string {
	s.t.Helper()
	c := &http.Client{Timeout: proctest.Timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + s.addr + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v\n%s", path, err, s.p.Output())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// upgrade upgrades to a child in mode and, on success, waits until the old
// generation has exited and returns the new READY line.
func (s *server) upgrade(mode string) (answer, readyLine string) {
	s.t.Helper()
	old := s.pid
	answer = s.get("/upgrade?mode=" + mode)
	if !strings.HasPrefix(answer, "ok ") {
		return answer, ""
	}
	readyLine = s.ready(s.p.Expect("READY "))
	if got := field(answer, "child"); got != strconv.Itoa(s.pid) {
		s.t.Fatalf("Upgrade returned child %s, READY says pid=%d", got, s.pid)
	}
	s.p.Expect(fmt.Sprintf("EXIT pid=%d", old))
	return answer, readyLine
}

// upgradeInBackground asks for an upgrade to a child in mode and returns
// the answer, or the request's error, when it comes.
func (s *server) upgradeInBackground(mode string) <-chan string {
	answer := make(chan string, 1)
	go func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + s.addr + "/upgrade?mode=" + mode)
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	return answer
}

func (s *server) mustUpgrade() string {
	s.t.Helper()
	answer, line := s.upgrade("")
	if line == "" {
		s.t.Fatalf("upgrade failed: %s\n%s", answer, s.p.Output())
	}
	return line
}

func TestUpgradeInheritsListener(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	addr, pid := s.addr, s.pid
	if line := s.p.Output(); !strings.Contains(line, "parent=false") {
		t.Fatalf("first generation thinks it has a parent:\n%s", line)
	}
	line := s.mustUpgrade()
	if s.addr != addr {
		t.Fatalf("listener moved from %s to %s", addr, s.addr)
	}
	if s.pid == pid {
		t.Fatal("pid did not change")
	}
	if field(line, "gen") != "2" || field(line, "parent") != "true" {
		t.Fatalf("second generation: %s", line)
	}
	if got := s.get("/"); got != fmt.Sprintf("pid=%d gen=2", s.pid) {
		t.Fatalf("GET / = %q", got)
	}
}

func TestPortZeroInheritedUnderStableKey(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_ADDR=127.0.0.1:0")
	addr := s.addr
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("no port assigned: %s", addr)
	}
	for i := 0; i < 3; i++ {
		s.mustUpgrade()
		if s.addr != addr {
			t.Fatalf("upgrade %d: port 0 listener rebound as %s, want %s", i, s.addr, addr)
		}
	}
}

func TestChildCrashesDuringInit(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, mode := range []string{"crash", "crash-before-new"} {
		answer, _ := s.upgrade(mode)
		if !strings.HasPrefix(answer, "childerr ") {
			t.Fatalf("%s: answer %q", mode, answer)
		}
		want := map[string]string{"crash": "3", "crash-before-new": "7"}[mode]
		if field(answer, "status") != want {
			t.Fatalf("%s: exit status in %q, want %s", mode, answer, want)
		}
		child, _ := strconv.Atoi(field(answer, "pid"))
		if proctest.Exists(child) {
			t.Fatalf("%s: child %d not reaped", mode, child)
		}
		// The parent keeps serving.
		if got := s.get("/"); !strings.HasPrefix(got, fmt.Sprintf("pid=%d ", s.pid)) {
			t.Fatalf("after failed upgrade GET / = %q", got)
		}
	}
	s.mustUpgrade()
}

func TestChildHangsPastTimeout(t *testing.T) {
	t.Parallel()
	// Long enough for a healthy child to start on a loaded machine (the
	// upgrade after the hang one), short enough for a quick test.
	s := startServer(t, "TFTEST_TIMEOUT=4s")
	answer, _ := s.upgrade("hang")
	if !strings.HasPrefix(answer, "childerr ") || field(answer, "timedout") != "true" {
		t.Fatalf("answer %q", answer)
	}
	child, _ := strconv.Atoi(field(answer, "pid"))
	if proctest.Exists(child) {
		t.Fatalf("hung child %d not killed and reaped", child)
	}
	if !strings.Contains(answer, "not ready before the upgrade timeout") {
		t.Fatalf("error does not say why: %q", answer)
	}
	s.mustUpgrade()
}

// A child that never speaks the handoff is most often a binary that does
// not call tableflip.New: the timeout's error says so.
func TestChildNeverCallsNew(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_TIMEOUT=2s")
	answer, _ := s.upgrade("no-new")
	if !strings.HasPrefix(answer, "childerr ") || field(answer, "timedout") != "true" {
		t.Fatalf("answer %q", answer)
	}
	if !strings.Contains(answer, "did the new binary call tableflip.New?") {
		t.Fatalf("the timeout error gives no hint: %q", answer)
	}
}

func TestChildReportsInitError(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	answer, _ := s.upgrade("fail")
	if !strings.HasPrefix(answer, "childerr ") {
		t.Fatalf("answer %q", answer)
	}
	// The reason reaches the caller as the child said it, in the
	// ChildError's Reason and in its message.
	if !strings.Contains(answer, `reason="config invalid: port 99999 out of range"`) {
		t.Fatalf("ChildError.Reason is not the child's: %q", answer)
	}
	if !strings.Contains(answer, "failed: config invalid: port 99999 out of range (exit status 1)") {
		t.Fatalf("the error message does not carry the reason: %q", answer)
	}
	s.mustUpgrade()
}

func TestChildStopsBeforeReady(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	answer, _ := s.upgrade("stop-before-ready")
	if !strings.Contains(answer, "stopped before it was ready") {
		t.Fatalf("answer %q", answer)
	}
}

func TestChildReadyFailsOnPIDFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "app.pid")
	s := startServer(t, "TFTEST_PIDFILE="+pidfile)
	answer, _ := s.upgrade("bad-pidfile")
	if !strings.HasPrefix(answer, "childerr ") || !strings.Contains(answer, "pid file") {
		t.Fatalf("answer %q", answer)
	}
	b, _ := os.ReadFile(pidfile)
	if strings.TrimSpace(string(b)) != strconv.Itoa(s.pid) {
		t.Fatalf("pid file %q, want the old generation's %d", b, s.pid)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	answer, _ := s.upgrade("missing-binary")
	// No child started: a ChildError without a pid.
	if !strings.HasPrefix(answer, "childerr pid=0 ") || !strings.Contains(answer, "/nonexistent/tableflip-next") {
		t.Fatalf("answer %q", answer)
	}
	s.mustUpgrade()
}

func TestUpgradeWhileUpgrading(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_TIMEOUT=3s")
	first := s.upgradeInBackground("hang")
	s.p.Expect("STARTED mode=hang ")
	if got := s.get("/upgrade"); !strings.Contains(got, "upgrade in progress") {
		t.Fatalf("second Upgrade: %q", got)
	}
	if got := <-first; !strings.Contains(got, "timedout=true") {
		t.Fatalf("first Upgrade: %q", got)
	}
}

func TestStopDuringUpgrade(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_TIMEOUT=60s", "TFTEST_HOLD=1")
	answer := s.upgradeInBackground("hang")
	child, _ := strconv.Atoi(field(s.p.Expect("STARTED mode=hang "), "pid"))
	// The hung child ignores SIGTERM: Stop must escalate to SIGKILL.
	s.p.Cmd.Process.Signal(syscall.SIGTERM)
	s.p.Expect(fmt.Sprintf("EXIT pid=%d", s.pid))
	// The parent is still alive (it holds on stdin), so a child it did
	// not reap would still exist as a zombie.
	if proctest.Exists(child) {
		t.Fatalf("child %d not reaped by its parent after Stop", child)
	}
	if got := <-answer; !strings.Contains(got, "stopped") {
		t.Fatalf("Upgrade during Stop answered %q", got)
	}
	s.p.Stdin.Close()
	if code := s.p.Wait(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestWaitForParent(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_EXIT_GATE=1")
	old := s.pid
	if got := s.get("/waitparent?timeout=1ms"); got != "<nil>" {
		t.Fatalf("first generation WaitForParent: %q", got)
	}
	if answer := s.get("/upgrade"); !strings.HasPrefix(answer, "ok ") {
		t.Fatal(answer)
	}
	s.ready(s.p.Expect("READY "))
	s.p.Expect(fmt.Sprintf("EXITING pid=%d", old))
	// The parent is alive and gated: a bounded wait must time out.
	if got := s.get("/waitparent?timeout=100ms"); !strings.Contains(got, "context deadline exceeded") {
		t.Fatalf("WaitForParent with a live parent: %q", got)
	}
	fmt.Fprintln(s.p.Stdin, "go")
	if got := s.get("/waitparent?timeout=60s"); got != "<nil>" {
		t.Fatalf("WaitForParent after the parent stopped: %q", got)
	}
	s.p.Expect(fmt.Sprintf("EXIT pid=%d", old))
}

func TestStateHandoff(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_STATE_SIZE=1000000")
	for i := 0; i < 2; i++ {
		old := s.pid
		line := s.mustUpgrade()
		if got := field(line, "state"); got != fmt.Sprintf("from:%d", old) {
			t.Fatalf("upgrade %d: state %q, want from:%d", i, got, old)
		}
	}
}

func TestPIDFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "app.pid")
	s := startServer(t, "TFTEST_PIDFILE="+pidfile)
	// A reader that never sees a partial or missing file while
	// generations replace it.
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		defer close(bad)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(pidfile)
			if err != nil || !strings.HasSuffix(string(b), "\n") {
				bad <- fmt.Sprintf("%q %v", b, err)
				return
			}
		}
	}()
	for i := 0; i < 5; i++ {
		b, _ := os.ReadFile(pidfile)
		if strings.TrimSpace(string(b)) != strconv.Itoa(s.pid) {
			t.Fatalf("pid file %q, want %d", b, s.pid)
		}
		s.mustUpgrade()
	}
	close(stop)
	if b, ok := <-bad; ok {
		t.Fatalf("reader saw a partial pid file: %s", b)
	}
	syscall.Kill(s.pid, syscall.SIGTERM)
	s.p.Expect(fmt.Sprintf("EXIT pid=%d", s.pid))
	proctest.WaitGone(t, s.pid)
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatalf("pid file left after the final stop: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestPIDFileUnwritable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for _, path := range []string{"/nonexistent-dir/app.pid", filepath.Join(file, "app.pid")} {
		p := proctest.Start(t, "server", "TFTEST_PIDFILE="+path)
		line := p.Expect("READYERR ")
		if !strings.Contains(line, "tableflip: write pid file: ") || !strings.Contains(line, filepath.Dir(path)) {
			t.Fatalf("unclear error: %s", line)
		}
		if code := p.Wait(); code == 0 {
			t.Fatal("exit code 0 after Ready failed")
		}
	}
}

func TestSpawnedProgramIsNotAChild(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.mustUpgrade()
	if got := s.get("/spawnenv"); got != "unset" {
		t.Fatalf("a program spawned by the child sees TABLEFLIP_HANDOFF=%q", got)
	}
}

func TestThousandListeners(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_LISTENERS=1000")
	first := field(s.p.Output(), "extra")
	for i := 0; i < 2; i++ {
		line := s.mustUpgrade()
		if got := field(line, "extra"); got != first {
			t.Fatalf("upgrade %d: the 1000 listeners changed: digest %s, want %s", i, got, first)
		}
	}
}

func TestNoFdLeakedBy50Upgrades(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_LISTENERS=10", "TFTEST_STATE_SIZE=100000")
	before, list := s.get("/fds"), s.get("/fds?list=1")
	for i := 0; i < 50; i++ {
		s.mustUpgrade()
	}
	// The newest generation's parent is gone; its handoff socket with it.
	if got := s.get("/waitparent"); got != "<nil>" {
		t.Fatal(got)
	}
	// The connection of the previous request may still be closing on the
	// server's side: ask again (each answer is an event) until it has.
	after := s.get("/fds")
	for i := 0; i < 20 && after != before; i++ {
		after = s.get("/fds")
	}
	if after != before {
		t.Fatalf("open fds: %s in the first generation, %s after 50 upgrades:\nbefore: %s\nafter:  %s", before, after, list, s.get("/fds?list=1"))
	}
}

// A companion file (Handoff.AddFile) reaches the child of that upgrade
// only: a claimed companion is not passed on, so the next upgrade's fresh
// one under the same name is no duplicate.
func TestCompanionFilesAreNotPassedOn(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_COMPANION=1")
	for gen := 1; gen <= 3; gen++ {
		line := s.mustUpgrade()
		if got, want := field(line, "companion"), fmt.Sprintf("from-gen-%d", gen); got != want {
			t.Fatalf("generation %d got companion %q, want %q", gen+1, got, want)
		}
	}
}

// copyTestBinary copies the test binary to path, so a test can replace or
// remove "the binary on disk" of a server started from there.
func copyTestBinary(t *testing.T, path string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	// A parallel test's fork while the file is open for writing would
	// hold it open in the child until that child's exec, and exec'ing the
	// copy would fail with ETXTBSY. A fork takes syscall.ForkLock for
	// writing: none starts while it is held for reading.
	syscall.ForkLock.RLock()
	err = os.WriteFile(path, b, 0o755)
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
}

func startServerFrom(t *testing.T, exe string, env ...string) *server {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	p := proctest.StartCommand(t, cmd, append([]string{proctest.RoleEnv + "=server"}, env...)...)
	s := &server{t: t, p: p}
	s.ready(p.Expect("READY "))
	return s
}

// The next version is whatever is at the path the service was started
// from when the upgrade begins: a deploy that renames the new binary over
// the old one, and one that moves the old one aside first, both start the
// new binary.
func TestNextVersionIsTheBinaryOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	copyTestBinary(t, app)
	s := startServerFrom(t, app)

	// Deploy 1: write the new binary beside it and rename it over.
	copyTestBinary(t, app+".new")
	before := inode(t, app)
	if err := os.Rename(app+".new", app); err != nil {
		t.Fatal(err)
	}
	line := s.mustUpgrade()
	if got := field(line, "exe"); got != app {
		t.Fatalf("after rename-over the child runs %q, want %q", got, app)
	}
	if inode(t, app) == before {
		t.Fatal("test setup: the binary was not replaced")
	}

	// Deploy 2: move the running binary aside, then put the new one in.
	if err := os.Rename(app, app+".old"); err != nil {
		t.Fatal(err)
	}
	copyTestBinary(t, app)
	line = s.mustUpgrade()
	if got := field(line, "exe"); got != app {
		t.Fatalf("after move-aside the child runs %q, want %q (not the old binary)", got, app)
	}
}

// When the binary is gone from disk, as after `go run` removed its build
// directory, Linux still upgrades to the running image.
func TestUpgradeWithBinaryDeleted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	copyTestBinary(t, app)
	s := startServerFrom(t, app)
	if err := os.Remove(app); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		line := s.mustUpgrade()
		if got := field(line, "exe"); !strings.HasPrefix(got, app) {
			t.Fatalf("upgrade %d runs %q", i, got)
		}
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
