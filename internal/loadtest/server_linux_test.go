package loadtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// serverCmd is the test binary re-executed as a server generation.
func serverCmd(t *testing.T, pidFile string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{
		roleEnv + "=server",
		"LOADTEST_PIDFILE=" + pidFile,
		// Under -race, a process sleeps 1s at exit by default.
		"GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0",
	}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func startServer(t *testing.T, env ...string) *loadtest.Server {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "server.pid")
	srv, err := loadtest.StartServer(context.Background(), serverCmd(t, pidFile, env...), pidFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

func onlyListener(t *testing.T, pid int) loadtest.Listener {
	t.Helper()
	lns, err := loadtest.Listeners(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(lns) != 1 || lns[0].Network != "tcp" {
		t.Fatalf("pid %d listens on %v, want one TCP socket", pid, lns)
	}
	return lns[0]
}

// TestServerUpgrades drives three upgrades of a real tableflip server and
// checks what the Server reports: pids, latencies, exit statuses, and the
// status SIGTERM ends with (7 here, to tell a real status from a default).
func TestServerUpgrades(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, "LOADTEST_TERM_CODE=7")
	first := srv.PID()
	ln := onlyListener(t, first)
	load, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + ln.Addr + "/"}, Mode: loadtest.KeepAlive, Clients: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	if err := load.WaitServed(ctx, first, 1); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		old := srv.PID()
		up, err := srv.Upgrade(ctx)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		if up.OldPID != old || up.NewPID == old || up.NewPID != srv.PID() {
			t.Fatalf("upgrade %d: %+v, server pid now %d", i, up, srv.PID())
		}
		if up.Latency <= 0 || up.Exited < up.Latency {
			t.Errorf("upgrade %d: latency %v, exited after %v", i, up.Latency, up.Exited)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 || up.OldExit.PID != old {
			t.Errorf("upgrade %d: old generation %v, want reaped with status 0", i, up.OldExit)
		}
		if exists(old) {
			t.Errorf("upgrade %d: old pid %d still exists", i, old)
		}
		if held, err := loadtest.HoldsSocket(up.NewPID, ln.Inode); err != nil || !held {
			t.Errorf("upgrade %d: pid %d does not hold socket %d: %v", i, up.NewPID, ln.Inode, err)
		}
		if inode, err := loadtest.ListenerInode("tcp", ln.Addr); err != nil || inode != ln.Inode {
			t.Errorf("upgrade %d: listener inode %d, %v; want %d", i, inode, err, ln.Inode)
		}
		if err := load.WaitServed(ctx, up.NewPID, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Generations(); len(got) != 4 || got[0] != first || got[3] != srv.PID() {
		t.Errorf("generations %v", got)
	}
	stats := load.Stop()
	if len(stats.Pids) != 4 {
		t.Errorf("served by %v, want the 4 generations", stats.Pids)
	}
	last := srv.PID()
	exit, err := srv.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exit != (loadtest.Exit{PID: last, Code: 7, Reaped: true}) {
		t.Errorf("SIGTERM: %+v, want pid %d reaped with status 7", exit, last)
	}
}

// TestServerUpgradeServerExits: a server that exits on SIGHUP makes
// Upgrade fail at once with its exit status, not after a timeout.
func TestServerUpgradeServerExits(t *testing.T) {
	srv := startServer(t, "LOADTEST_ON_HUP=exit3")
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	start := time.Now()
	up, err := srv.Upgrade(ctx)
	if !errors.Is(err, loadtest.ErrExited) {
		t.Fatalf("Upgrade: %+v, %v; want an error with the exit status", up, err)
	}
	if up.OldExit.Code != 3 {
		t.Errorf("old exit %+v", up.OldExit)
	}
	t.Logf("%v after %v", err, time.Since(start))
}

// TestStartServerNotReady: a server that never writes its pid file makes
// StartServer fail when its context ends; Close kills it.
func TestStartServerNotReady(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "server.pid")
	cmd := serverCmd(t, pidFile, "LOADTEST_NOREADY=1")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	srv, err := loadtest.StartServer(ctx, cmd, pidFile)
	if err == nil {
		srv.Close()
		t.Fatal("StartServer succeeded without a pid file")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline", err)
	}
	if cmd.ProcessState == nil {
		t.Errorf("the process was not reaped after the failed start")
	}
}

// TestServerClose: after an upgrade, Close kills the serving generation,
// leaves no generation behind, and is idempotent.
func TestServerClose(t *testing.T) {
	srv := startServer(t)
	if _, err := srv.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	gens := srv.Generations()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range gens {
		if exists(pid) {
			t.Errorf("pid %d still exists after Close", pid)
		}
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestAttach drives a server whose first generation the test started and
// reaps itself.
func TestAttach(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "server.pid")
	cmd := serverCmd(t, pidFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	srv, err := loadtest.Attach(context.Background(), cmd.Process.Pid, pidFile)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	defer srv.Close()
	up, err := srv.Upgrade(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if up.OldExit.Reaped {
		t.Errorf("Attach reaped the first generation, which its starter owns")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("first generation: %v", err)
	}
	exit, err := srv.Stop(context.Background())
	if err != nil || !exit.Reaped || exit.Code != 0 {
		t.Errorf("Stop: %v, %v", exit, err)
	}
}

// TestServerOutputPipe: a writer that is not a file gets every
// generation's output, and Close waits for it.
func TestServerOutputPipe(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "server.pid")
	var out strings.Builder
	cmd := serverCmd(t, pidFile)
	// One writer for both: one pipe and one copier, or -race objects.
	cmd.Stdout, cmd.Stderr = &out, &out
	srv, err := loadtest.StartServer(context.Background(), cmd, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// The copier is done once Close returns.
	for _, pid := range srv.Generations() {
		if want := fmt.Sprintf("bye pid=%d\n", pid); !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

// exists reports whether pid exists (a zombie included).
func exists(pid int) bool { return unix.Kill(pid, 0) == nil }
