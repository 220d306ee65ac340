package exampletest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// Program is the example program under test: an executable, run with some
// more environment. Main and MainOrRun set it up.
type Program struct {
	// Path is the executable.
	Path string
	// Env is added to the environment of every run.
	Env []string
}

// Command returns the command that runs the program with args, bounded by
// ctx. Its environment is this process's with Env and, since a
// race-enabled program sleeps 1s at exit by default, GORACE's
// atexit_sleep_ms=0 (a race it finds still makes it exit with status 66,
// which the tests see). Its output goes nowhere until the caller says.
func (p Program) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.Path, args...)
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, p.Env...)
	return cmd
}

// Run runs the program with args to its end, within loadtest's
// DefaultTimeout, and returns its output (stdout and stderr) and its exit
// status.
func (p Program) Run(t testing.TB, args ...string) (output string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	out, err := p.Command(ctx, args...).CombinedOutput()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run %s: %v; output:\n%s", p.Path, err, out)
	}
	return string(out), 0
}

// Deploy copies the program to path, as a deploy does (see CopyFile), and
// returns the copy, run with the same environment.
func (p Program) Deploy(t testing.TB, path string) Program {
	t.Helper()
	CopyFile(t, p.Path, path)
	return Program{Path: path, Env: p.Env}
}

// CopyFile writes src's content to dst, executable, through a new file
// renamed over dst: a process that runs dst meanwhile sees the old
// program or the new one, never a part.
func CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// Server is a running example program, from Program.Start.
type Server struct {
	*loadtest.Server
	// PIDFile is the -pidfile the program was given.
	PIDFile string
	// Stdout and Stderr are what its generations print; Stderr, its
	// log, is in the test's log too.
	Stdout, Stderr *Log
}

// Start starts the program with args and -pidfile (a file in a new
// directory of t's) and waits until its first generation is ready. When
// the test ends, whatever is left of it is killed.
func (p Program) Start(t testing.TB, args ...string) *Server {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "example.pid")
	cmd := p.Command(context.Background(), append(args, "-pidfile", pidFile)...)
	s := &Server{PIDFile: pidFile, Stdout: NewLog(t, ""), Stderr: NewLog(t, "server: ")}
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	srv, err := loadtest.StartServer(context.Background(), cmd, pidFile)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, s.Stderr)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	s.Server = srv
	return s
}

// Listener returns the one listening socket of the serving generation.
func (s *Server) Listener(t testing.TB) loadtest.Listener {
	t.Helper()
	lns, err := loadtest.Listeners(s.PID())
	if err != nil {
		t.Fatal(err)
	}
	if len(lns) != 1 {
		t.Fatalf("pid %d listens on %v, want one socket", s.PID(), lns)
	}
	return lns[0]
}

// StopClean sends SIGTERM and fails the test unless the serving
// generation exits with status 0.
func (s *Server) StopClean(t testing.TB) {
	t.Helper()
	exit, err := s.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !exit.Reaped || exit.Code != 0 {
		t.Fatalf("SIGTERM: %v, want exit status 0", exit)
	}
}

// CheckAnswer checks the stable contract of an HTTP example's GET url: 200
// and a body with pid=<pid of the serving generation>.
func (s *Server) CheckAnswer(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if pid, ok := loadtest.ParsePID(body); resp.StatusCode != http.StatusOK || !ok || pid != s.PID() {
		t.Errorf("GET %s: %s %q, want 200 and pid=%d", url, resp.Status, body, s.PID())
	}
}

// UpgradeUnderLoad upgrades the server n times while loads run against
// it. It first waits until the serving generation has answered every load.
// After each upgrade it checks that the serving pid changed, that the old
// generation exited with status 0 after its drain, that ln is still the
// one socket listening on its address and that the new generation holds
// it, and it waits until the new generation has answered every load. At
// the end there must be n more generations. It returns the upgrades.
func (s *Server) UpgradeUnderLoad(t testing.TB, ln loadtest.Listener, n int, loads ...*loadtest.Load) []loadtest.Upgrade {
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
	gens := len(s.Generations())
	waitServed(s.PID())
	var ups []loadtest.Upgrade
	for i := 1; i <= n; i++ {
		up, err := s.Upgrade(ctx)
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
		if err := ln.HeldBy(up.NewPID); err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		waitServed(up.NewPID)
		t.Logf("upgrade %2d: pid %d -> %d, ready in %v, old one gone after %v", i, up.OldPID, up.NewPID, up.Latency, up.Exited)
	}
	if got := len(s.Generations()); got != gens+n {
		t.Errorf("%d generations after %d upgrades, want %d", got, n, gens+n)
	}
	return ups
}

// StartLoads starts two loads of clients each against target, one with a
// new connection per request and one with keep-alive connections, and
// stops them when the test ends.
func StartLoads(t testing.TB, target loadtest.Target, clients int) []*loadtest.Load {
	t.Helper()
	var loads []*loadtest.Load
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		l, err := loadtest.Start(loadtest.Config{Target: target, Mode: mode, Clients: clients})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Stop() })
		loads = append(loads, l)
	}
	return loads
}

// StopLoads stops the loads, logs what their clients saw, and checks it
// with CheckStats.
func (s *Server) StopLoads(t testing.TB, loads ...*loadtest.Load) {
	t.Helper()
	for _, l := range loads {
		st := l.Stop()
		t.Log(st)
		s.CheckStats(t, st)
	}
}

// CheckStats fails the test on any failed request of a load, and checks
// that every generation, and only they, served its clients.
func (s *Server) CheckStats(t testing.TB, st loadtest.Stats) {
	t.Helper()
	if st.Failures != 0 {
		t.Errorf("%s: %d of %d requests failed; first errors:\n%v", st.Mode, st.Failures, st.Requests+st.Failures, st.Errors)
	}
	gens := s.Generations()
	for _, pid := range gens {
		if st.ByPid[pid] == 0 {
			t.Errorf("%s: generation pid %d served no request", st.Mode, pid)
		}
	}
	if len(st.ByPid) != len(gens) {
		t.Errorf("%s: served by pids %v, want the generations %v", st.Mode, st.Pids, gens)
	}
}
