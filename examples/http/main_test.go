package main

// The tests of examples/http run the program as a user would: TestMain
// builds it with `go build` (with -race when the tests run with -race), and
// each test starts it, drives load at it with internal/loadtest, and
// upgrades it with SIGHUP between real processes.
//
// Helpers for every test of the package: serverBin, startServer,
// listener, upgradeUnderLoad, checkStats, stopServer.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// upgrades is how many consecutive upgrades each test drives.
const upgrades = 20

// serverBin is the examples/http binary that TestMain built.
var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tableflip-examples-http-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var flags []string
	if raceEnabled {
		flags = append(flags, "-race")
	}
	serverBin, err = loadtest.Build(context.Background(), dir, ".", flags...)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	// What goleak.VerifyTestMain does, with the build directory removed
	// first.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startServer starts serverBin with args and -pidfile, waits until it is
// ready, and kills whatever is left of it when the test ends. Its log goes
// to the test's log (shown on failure or with -v).
func startServer(t *testing.T, args ...string) *loadtest.Server {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "http.pid")
	cmd := exec.Command(serverBin, append(args, "-pidfile", pidFile)...)
	cmd.Stderr = testLog{t}
	// A race-enabled binary sleeps 1s at exit by default; a race it found
	// still makes it exit with status 66, which the tests check.
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	srv, err := loadtest.StartServer(context.Background(), cmd, pidFile)
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

// testLog writes a process's output to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("server: %s", p)
	return len(p), nil
}

// upgradeUnderLoad upgrades srv n times while loads run against it. After
// each upgrade it checks that the serving pid changed, that the old
// generation exited with status 0 after its drain, that ln is still the
// one socket listening on its address and that the new generation holds
// it, and it waits until the new generation has answered every load. It
// returns the upgrades.
func upgradeUnderLoad(t *testing.T, srv *loadtest.Server, ln loadtest.Listener, n int, loads ...*loadtest.Load) []loadtest.Upgrade {
	t.Helper()
	ctx := context.Background()
	waitServed := func(pid int) {
		t.Helper()
		for _, l := range loads {
			if err := l.WaitServed(ctx, pid, 5); err != nil {
				t.Fatalf("%s: %v", l.Stats().Mode, err)
			}
		}
	}
	waitServed(srv.PID())
	var ups []loadtest.Upgrade
	for i := 1; i <= n; i++ {
		up, err := srv.Upgrade(ctx)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		ups = append(ups, up)
		if up.NewPID == up.OldPID || up.NewPID == 0 {
			t.Fatalf("upgrade %d: serving pid %d -> %d", i, up.OldPID, up.NewPID)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			t.Errorf("upgrade %d: old generation: %v, want exit status 0", i, up.OldExit)
		}
		inode, err := loadtest.ListenerInode(ln.Network, ln.Addr)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		if inode != ln.Inode {
			t.Fatalf("upgrade %d: the socket listening on %s is inode %d, want %d (the first generation's)", i, ln.Addr, inode, ln.Inode)
		}
		if held, err := loadtest.HoldsSocket(up.NewPID, ln.Inode); err != nil || !held {
			t.Fatalf("upgrade %d: pid %d does not hold the listening socket %d (err %v)", i, up.NewPID, ln.Inode, err)
		}
		waitServed(up.NewPID)
		t.Logf("upgrade %2d: pid %d -> %d, ready in %v, old one gone after %v", i, up.OldPID, up.NewPID, up.Latency, up.Exited)
	}
	return ups
}

// listener returns the one listening socket of srv's serving generation.
func listener(t *testing.T, srv *loadtest.Server) loadtest.Listener {
	t.Helper()
	lns, err := loadtest.Listeners(srv.PID())
	if err != nil {
		t.Fatal(err)
	}
	if len(lns) != 1 {
		t.Fatalf("pid %d listens on %v, want one socket", srv.PID(), lns)
	}
	return lns[0]
}

// stopServer sends SIGTERM and checks that the serving generation exits
// with status 0.
func stopServer(t *testing.T, srv *loadtest.Server) {
	t.Helper()
	exit, err := srv.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !exit.Reaped || exit.Code != 0 {
		t.Fatalf("SIGTERM: %v, want exit status 0", exit)
	}
}

// checkStats fails on any failed request, and checks that every
// generation, and only they, served the clients.
func checkStats(t *testing.T, s loadtest.Stats, srv *loadtest.Server) {
	t.Helper()
	if s.Failures != 0 {
		t.Errorf("%s: %d of %d requests failed; first errors:\n%v", s.Mode, s.Failures, s.Requests+s.Failures, s.Errors)
	}
	gens := srv.Generations()
	if len(gens) != upgrades+1 {
		t.Errorf("%d generations, want %d", len(gens), upgrades+1)
	}
	for _, pid := range gens {
		if s.ByPid[pid] == 0 {
			t.Errorf("%s: generation pid %d served no request", s.Mode, pid)
		}
	}
	if len(s.ByPid) != len(gens) {
		t.Errorf("%s: served by pids %v, want the generations %v", s.Mode, s.Pids, gens)
	}
}
