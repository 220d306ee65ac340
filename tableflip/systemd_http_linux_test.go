package tableflip_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/proctest"
)

// TestSystemdSocketActivatedHTTP runs examples/http the way a .socket unit
// would start it: systemd-socket-activate owns the listening socket and
// starts the server on the first connection, with a NOTIFY_SOCKET the test
// reads. The server upgrades five times under load, in two client modes,
// without a failed request; every generation serves on the socket
// systemd-socket-activate created (same inode, and no other socket listens
// on the port: a server that bound its own would fail with "address already
// in use"); and the service manager hears the exact sd_notify sequence,
// each message from the main process of the moment.
func TestSystemdSocketActivatedHTTP(t *testing.T) {
	t.Parallel()
	sa := socketActivateBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*proctest.Timeout)
	defer cancel()
	dir := t.TempDir()
	bin, err := loadtest.Build(ctx, dir, "../examples/http")
	if err != nil {
		t.Fatal(err)
	}
	ns := listenNotify(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	pidFile := filepath.Join(dir, "http.pid")
	p := proctest.StartCommand(t, exec.Command("/bin/sh", "-c", `exec "$@" 2>&1`, "sh",
		sa, "-l", addr, "-E", "NOTIFY_SOCKET="+ns.path,
		bin, "-addr", addr, "-pidfile", pidFile))
	pid := p.Cmd.Process.Pid
	pids := []int{pid}
	t.Cleanup(func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range pids {
			proctest.WaitGone(t, pid)
		}
	})
	p.Expect("Listening on ")
	inode := fdInode(t, pid, 3)

	// The first connection starts the server, which answers it.
	if body := get(t, addr); !strings.Contains(body, fmt.Sprintf("pid=%d ", pid)) {
		t.Fatalf("first answer %q, want one from pid %d", body, pid)
	}
	ns.expect(fmt.Sprintf("from=%d READY=1 STATUS=*", pid))
	checkServing(t, addr, pidFile, pid, inode)

	var loads []*loadtest.Load
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		l, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + addr + "/"}, Mode: mode, Clients: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Stop()
		loads = append(loads, l)
	}
	waitServed := func(pid int) {
		t.Helper()
		for _, l := range loads {
			if err := l.WaitServed(ctx, pid, 20); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitServed(pid)

	for i := 0; i < 5; i++ {
		old := pid
		before := monotonicUsec(t)
		if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		ns.expectReloading(old, before)
		m := ns.next()
		v, _ := m.get("MAINPID")
		pid, _ = strconv.Atoi(v)
		if want := fmt.Sprintf("from=%d MAINPID=%d READY=1 STATUS=*", old, pid); pid <= 0 || m.shape() != want {
			t.Fatalf("upgrade %d: sd_notify message\n got %s\nwant %s", i+1, m.shape(), want)
		}
		pids = append(pids, pid)
		waitServed(pid)
		proctest.WaitGone(t, old) // drained and exited
		checkServing(t, addr, pidFile, pid, inode)
	}
	for _, l := range loads {
		st := l.Stop()
		t.Logf("%v", st)
		if st.Failures != 0 || st.Requests == 0 {
			t.Errorf("%v", st)
		}
		if len(st.Pids) != len(pids) {
			t.Errorf("%s: served by %v, want every generation %v", st.Mode, st.Pids, pids)
		}
	}

	syscall.Kill(pid, syscall.SIGTERM)
	ns.expect(fmt.Sprintf("from=%d STOPPING=1 STATUS=*", pid))
	if code := exitCode(t, pid); code != 0 {
		t.Errorf("last generation %d exited with %d after SIGTERM, want 0\n%s", pid, code, p.Output())
	}
	ns.none()
}

// checkServing checks that pid serves on the one socket with inode that
// listens on addr, and that the pid file names it.
func checkServing(t *testing.T, addr, pidFile string, pid int, inode uint64) {
	t.Helper()
	got, err := loadtest.ListenerInode("tcp", addr)
	if err != nil || got != inode {
		t.Fatalf("socket listening on %s: inode %d (%v), want the activated one %d", addr, got, err, inode)
	}
	if !holdsInode(t, pid, inode) {
		t.Fatalf("pid %d does not hold the activated socket %d", pid, inode)
	}
	if got, err := loadtest.ReadPIDFile(pidFile); err != nil || got != pid {
		t.Fatalf("pid file names %d (%v), want %d", got, err, pid)
	}
}

func get(t *testing.T, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: proctest.Timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %s %q: %v", resp.Status, b, err)
	}
	return string(b)
}

// exitCode waits for pid, a child of this process (a subreaper), to exit
// and reaps it.
func exitCode(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd of %d: %v", pid, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(proctest.Timeout)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(time.Until(deadline).Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("pid %d did not exit: %v", pid, err)
		}
		break
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil {
		t.Fatalf("reap %d: %v", pid, err)
	}
	if !ws.Exited() {
		return -1
	}
	return ws.ExitStatus()
}
