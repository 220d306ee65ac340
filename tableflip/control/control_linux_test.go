package control_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/tableflip/control"
)

type bins struct{ app, ctl, broken, slow string }

// build builds examples/http (the service), cmd/tableflipctl and a build
// that fails in init, into dir.
// TestCommand runs tableflipctl, as a real process, against examples/http
// serving -control. The binaries are built once, into a directory that
// uid 65534 can reach (t.TempDir's parent is 0700).
func TestCommand(t *testing.T) {
	dir, err := os.MkdirTemp("", "tftest-control-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := build(t, dir)
	for name, f := range map[string]func(*testing.T, bins){
		"UpgradeStatusStop":    testCommandUpgradeStatusStop,
		"FailedUpgrade":        testCommandFailedUpgrade,
		"RefusesOtherUsers":    testCommandRefusesOtherUsers,
		"StopWaitsForDraining": testCommandStopWaitsForDraining,
		"SecondRequestJoins":   testSecondRequestJoinsUpgrade,
	} {
		t.Run(name, func(t *testing.T) { f(t, b.copy(t)) })
	}
}

// copy gives a test its own service binary: a test replaces it to deploy.
func (b bins) copy(t *testing.T) bins {
	dir, err := os.MkdirTemp(filepath.Dir(b.app), "app-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(b.app)
	if err != nil {
		t.Fatal(err)
	}
	b.app = filepath.Join(dir, "http")
	if err := os.WriteFile(b.app, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

func build(t *testing.T, dir string) bins {
	t.Helper()
	ctx := context.Background()
	var b bins
	var err error
	if b.app, err = loadtest.Build(ctx, dir, "../../examples/http"); err != nil {
		t.Fatal(err)
	}
	if b.ctl, err = loadtest.Build(ctx, dir, "../../cmd/tableflipctl"); err != nil {
		t.Fatal(err)
	}
	if b.broken, err = loadtest.Build(ctx, t.TempDir(), "../../systemdtest/testdata/broken"); err != nil {
		t.Fatal(err)
	}
	if b.slow, err = loadtest.Build(ctx, t.TempDir(), "./testdata/slow"); err != nil {
		t.Fatal(err)
	}
	return b
}

// service starts examples/http with -control, returns the socket path.
func service(t *testing.T, b bins, dir string) (*loadtest.Server, string) {
	t.Helper()
	sock := filepath.Join(dir, "control.sock")
	pidFile := filepath.Join(dir, "http.pid")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := loadtest.StartServer(ctx, exec.Command(b.app, "-addr", "127.0.0.1:0", "-pidfile", pidFile, "-control", sock), pidFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, sock
}

// tableflipctl runs the command as a real process.
func tableflipctl(t *testing.T, b bins, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.ctl, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func testCommandUpgradeStatusStop(t *testing.T, b bins) {
	dir := t.TempDir()
	srv, sock := service(t, b, dir)
	first := srv.PID()

	out, errOut, code := tableflipctl(t, b, nil, "-socket", sock, "upgrade")
	if code != 0 {
		t.Fatalf("upgrade: exit %d: %s", code, errOut)
	}
	second, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || second == first {
		t.Fatalf("upgrade printed %q (first pid %d)", out, first)
	}
	if pid, err := loadtest.ReadPIDFile(filepath.Join(dir, "http.pid")); err != nil || pid != second {
		t.Fatalf("pid file names %d (%v), the command printed %d", pid, err, second)
	}

	// A request from the pid already upgraded gets that upgrade's result.
	out, errOut, code = tableflipctl(t, b, nil, "-socket", sock, "upgrade", "-from", strconv.Itoa(first))
	if code != 0 || strings.TrimSpace(out) != strconv.Itoa(second) {
		t.Fatalf("upgrade -from %d: exit %d, %q %s; want %d", first, code, out, errOut, second)
	}
	// One from a pid that never served is refused.
	if _, errOut, code = tableflipctl(t, b, nil, "-socket", sock, "upgrade", "-from", "1"); code != 1 || !strings.Contains(errOut, "not the serving generation") {
		t.Fatalf("upgrade -from 1: exit %d, %s", code, errOut)
	}

	out, errOut, code = tableflipctl(t, b, nil, "-socket", sock, "status")
	if code != 0 || !strings.Contains(out, "serving: generation 2 (pid "+strconv.Itoa(second)+")") {
		t.Fatalf("status: exit %d: %q %s", code, out, errOut)
	}

	out, errOut, code = tableflipctl(t, b, nil, "-socket", sock, "stop")
	if code != 0 || !strings.Contains(out, "generation 2 (pid "+strconv.Itoa(second)+") exited") {
		t.Fatalf("stop: exit %d: %q %s", code, out, errOut)
	}
	// stop returned: every generation has exited.
	for _, pid := range []int{first, second} {
		if alive(pid) {
			t.Errorf("pid %d still running after stop returned", pid)
		}
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket is still there after the final stop: %v", err)
	}
}

func testCommandFailedUpgrade(t *testing.T, b bins) {
	dir := t.TempDir()
	srv, sock := service(t, b, dir)

	// Deploy a build that fails in init: the upgrade runs the binary on disk.
	good, err := os.ReadFile(b.app)
	if err != nil {
		t.Fatal(err)
	}
	broken, err := os.ReadFile(b.broken)
	if err != nil {
		t.Fatal(err)
	}
	replace := func(data []byte) {
		tmp := b.app + ".new"
		if err := os.WriteFile(tmp, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, b.app); err != nil {
			t.Fatal(err)
		}
	}
	replace(broken)
	out, errOut, code := tableflipctl(t, b, nil, "-socket", sock, "upgrade")
	replace(good)
	if code != 1 || out != "" {
		t.Fatalf("upgrade of a broken build: exit %d, stdout %q", code, out)
	}
	if !strings.Contains(errOut, `upgrade failed: config check failed: no such setting "listen" (the broken build)`) {
		t.Fatalf("the child's reason is not on stderr: %s", errOut)
	}

	// The service serves on, and upgrades once the good build is back.
	st, err := control.RequestStatus(context.Background(), sock)
	if err != nil || st.Serving.Pid != srv.PID() || st.Upgrading {
		t.Fatalf("status after the failed upgrade: %+v %v (serving pid %d)", st, err, srv.PID())
	}
	pid, err := control.RequestUpgrade(context.Background(), sock, 0)
	if err != nil || pid == srv.PID() {
		t.Fatalf("upgrade after the failed one: %d %v", pid, err)
	}
}

func testCommandRefusesOtherUsers(t *testing.T, b bins) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as uid 65534")
	}
	// A directory uid 65534 can reach (t.TempDir's parent is 0700).
	dir, err := os.MkdirTemp("", "tftest-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, sock := service(t, b, dir)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}

	// The file's mode (0600) keeps others out already.
	if _, errOut, code := tableflipctl(t, b, nobody, "-socket", sock, "upgrade"); code != 1 || !strings.Contains(errOut, "permission denied") {
		t.Fatalf("uid 65534 through a 0600 socket: exit %d: %s", code, errOut)
	}
	// A mode that lets anyone connect: SO_PEERCRED refuses them.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"upgrade", "stop", "status"} {
		if _, errOut, code := tableflipctl(t, b, nobody, "-socket", sock, op); code != control.ExitRefused || !strings.Contains(errOut, "uid 65534 may not control this service") {
			t.Fatalf("%s as uid 65534: exit %d: %s", op, code, errOut)
		}
	}
	st, err := control.RequestStatus(context.Background(), sock)
	if err != nil || st.Serving.Pid != srv.PID() || len(st.Draining) != 0 {
		t.Fatalf("after the refused requests: %+v %v, want pid %d serving alone", st, err, srv.PID())
	}
}

// TestCommandStopWaitsForDraining stops the service while the generation
// before the serving one still drains (a keep-alive connection of its own
// holds it for drain.DefaultIdleGrace): stop returns only when that one has
// exited too.
func testCommandStopWaitsForDraining(t *testing.T, b bins) {
	dir := t.TempDir()
	srv, sock := service(t, b, dir)
	first := srv.PID()
	lns, err := loadtest.Listeners(first)
	if err != nil || len(lns) == 0 {
		t.Fatalf("the service's listener: %v %v", lns, err)
	}
	c, err := net.Dial("tcp", lns[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close() // the connection stays open and idle, on the first generation

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	second, err := control.RequestUpgrade(ctx, sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := control.RequestStatus(ctx, sock)
	if err != nil || st.Serving.Pid != second || len(st.Draining) != 1 || st.Draining[0].Pid != first {
		t.Fatalf("status: %+v %v; want %d serving, %d draining", st, err, second, first)
	}
	gens, err := control.RequestStop(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	want := []control.Generation{{Pid: second, Generation: 2}, {Pid: first, Generation: 1}}
	if !slices.Equal(gens, want) {
		t.Errorf("stop waited for %+v, want %+v", gens, want)
	}
	for _, pid := range []int{first, second} {
		if alive(pid) {
			t.Errorf("pid %d still running after stop returned", pid)
		}
	}
}

// TestSecondRequestJoinsUpgrade: a request made while an upgrade is in
// progress waits for that upgrade and gets its result; no second upgrade
// starts.
func testSecondRequestJoinsUpgrade(t *testing.T, b bins) {
	dir := t.TempDir()
	slow := b.slow
	gate := filepath.Join(dir, "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "control.sock")
	pidFile := filepath.Join(dir, "http.pid")
	cmd := exec.Command(b.app, "-addr", "127.0.0.1:0", "-pidfile", pidFile, "-control", sock)
	cmd.Env = append(os.Environ(), "TFTEST_GATE="+gate)
	logR, logW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logW
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := loadtest.StartServer(ctx, cmd, pidFile)
	logW.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	requests := make(chan string, 16)
	go func() {
		defer close(requests)
		sc := bufio.NewScanner(logR)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "control request") && strings.Contains(sc.Text(), `"op": "upgrade"`) ||
				strings.Contains(sc.Text(), "upgrade started") {
				requests <- sc.Text()
			}
		}
	}()
	defer logR.Close()
	nextLine := func(want string) {
		t.Helper()
		select {
		case line, ok := <-requests:
			if !ok || !strings.Contains(line, want) {
				t.Fatalf("service log: %q, want %q", line, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %q in the service's log", want)
		}
	}

	good, _ := os.ReadFile(b.app)
	data, _ := os.ReadFile(slow)
	if err := os.WriteFile(b.app+".new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(b.app+".new", b.app); err != nil {
		t.Fatal(err)
	}
	type result struct {
		pid int
		err error
	}
	results := make(chan result, 2)
	ask := func() {
		pid, err := control.RequestUpgrade(ctx, sock, 0)
		results <- result{pid, err}
	}
	go ask()
	nextLine("control request")
	nextLine("upgrade started")
	// The child holds the upgrade in progress until the gate closes.
	w, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	go ask()
	nextLine("control request") // the second request is in
	w.Close()
	var first *control.UpgradeError
	for i := range 2 {
		r := <-results
		var ue *control.UpgradeError
		if !errors.As(r.err, &ue) || ue.Reason != "the slow build was released" {
			t.Fatalf("request %d: %d %v", i, r.pid, r.err)
		}
		if first == nil {
			first = ue
		} else if ue.ChildPid != first.ChildPid {
			t.Errorf("the requests got the results of children %d and %d: two upgrades", first.ChildPid, ue.ChildPid)
		}
	}
	os.WriteFile(b.app+".new", good, 0o755)
	os.Rename(b.app+".new", b.app)
	select {
	case line := <-requests:
		t.Errorf("after the joined upgrade: %s", line)
	default:
	}
}
