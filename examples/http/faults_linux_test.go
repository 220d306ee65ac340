package main

// The fault suite (issue 11): each fault an operator may meet, tried on
// the examples/http binary under load, with the number of failed requests
// asserted. Every test runs in parallel with the others; every wait is on
// an event (a log line, the pid file, a process exit) and bounded.
//
// Faults at the next generation's start (it crashes, hangs, reports an
// error, cannot write its PID file, runs out of descriptors) cost no
// request: the old generation serves on, and the next generation accepts
// nothing before its parent has committed to it, so the connections queued
// on the shared socket are the old generation's to answer. A generation
// SIGKILLed costs the requests in flight in it, and no more when another
// generation is left to serve.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// faultClients is the number of clients of each load (one with a new
// connection per request, one keep-alive), and so the most requests that
// can be in flight in one generation.
const faultClients = 2

// fault is one examples/http deployed at a path of its own, serving under
// two loads, with a good copy of the binary beside it for scripts to run.
type fault struct {
	t     *testing.T
	dir   string
	bin   string // the path the service runs from: deploy here
	good  string // a copy of the real binary
	srv   *exampletest.Server
	loads []*loadtest.Load
}

func startFault(t *testing.T, args ...string) *fault {
	t.Helper()
	f := &fault{t: t, dir: t.TempDir()}
	f.bin = filepath.Join(f.dir, "http")
	f.good = filepath.Join(f.dir, "http.good")
	install(t, program.Path, f.good)
	install(t, program.Path, f.bin)
	f.srv = exampletest.Program{Path: f.bin, Env: program.Env}.Start(t, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	f.startLoads(f.srv.Listener(t).Addr)
	f.waitServed(f.srv.PID())
	return f
}

func (f *fault) startLoads(addr string) {
	f.loads = exampletest.StartLoads(f.t, loadtest.Target{URL: "http://" + addr + "/"}, faultClients)
}

// waitServed waits until pid has answered 5 more requests of every load.
func (f *fault) waitServed(pid int) {
	f.t.Helper()
	for _, l := range f.loads {
		if err := l.WaitServed(context.Background(), pid, l.Stats().ByPid[pid]+5); err != nil {
			f.t.Fatalf("%s: %v", l.Stats().Mode, err)
		}
	}
}

// deploy puts a shell script at the service's path: the next generation
// runs it. $GOOD in it is the real binary, $DIR the test's directory.
func (f *fault) deploy(script string) {
	f.t.Helper()
	tmp := f.bin + ".script"
	body := "#!/bin/sh\nGOOD=" + f.good + "\nDIR=" + f.dir + "\n" + script + "\n"
	if err := os.WriteFile(tmp, []byte(body), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, f.bin); err != nil {
		f.t.Fatal(err)
	}
}

// redeploy puts the real binary back.
func (f *fault) redeploy() { install(f.t, f.good, f.bin) }

// install puts src at dst (renamed over it) as a hard link, not a copy:
// a binary written while the tests run in parallel may be held open for
// writing by a process another test forks, and exec'ing it then fails with
// ETXTBSY.
func install(t *testing.T, src, dst string) {
	t.Helper()
	tmp := dst + ".link"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		exampletest.CopyFile(t, src, dst)
		return
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// upgradeOutcome sends SIGHUP to pid and returns the serving generation's
// log line that ends the upgrade: "upgrade succeeded" or "upgrade failed".
func (f *fault) upgradeOutcome(pid int) string {
	f.t.Helper()
	from := f.srv.Stderr.Len()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		f.t.Fatal(err)
	}
	return f.waitOutcome(from)
}

func (f *fault) waitOutcome(from int) string {
	f.t.Helper()
	for {
		line, next := f.srv.Stderr.Wait(f.t, from, "upgrade ")
		if strings.Contains(line, "upgrade succeeded") || strings.Contains(line, "upgrade failed") {
			return line
		}
		from = next
	}
}

// failedUpgrade upgrades into whatever is deployed, which must fail with
// want in the reason, and checks that the same generation serves on and
// still owns the pid file.
func (f *fault) failedUpgrade(want string) {
	f.t.Helper()
	pid := f.srv.PID()
	line := f.upgradeOutcome(pid)
	if !strings.Contains(line, "upgrade failed") || !strings.Contains(line, want) {
		f.t.Fatalf("upgrade: %s, want a failure saying %q", line, want)
	}
	f.waitServed(pid)
	if got, err := loadtest.ReadPIDFile(f.srv.PIDFile); err != nil || got != pid {
		f.t.Errorf("pid file names %d (%v), want the serving %d", got, err, pid)
	}
}

// upgradeAndStop upgrades into what is deployed, which must succeed and
// serve, then stops the loads, with no request failed in all, and the
// service.
func (f *fault) upgradeAndStop() {
	f.t.Helper()
	up, err := f.srv.Upgrade(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	f.waitServed(up.NewPID)
	f.stopLoads(0)
	f.srv.StopClean(f.t)
}

// stopLoads stops the loads and fails the test if more than max requests
// failed in all.
func (f *fault) stopLoads(max int64) {
	f.t.Helper()
	var failed int64
	for _, l := range f.loads {
		st := l.Stop()
		f.t.Log(st)
		failed += st.Failures
	}
	if failed > max {
		f.t.Errorf("%d requests failed, want at most %d", failed, max)
	}
}

// hangTimeout is the -upgrade-timeout of the hang fault: long enough for a
// good upgrade of a race-enabled binary on a loaded machine, short against
// the default of one minute.
const hangTimeout = 10 * time.Second

// TestFaultChildFailsInInit: a next generation that crashes, exits with an
// error, reports an error from its init, or hangs, fails the upgrade with
// a clear reason and costs no request; after it, the good binary upgrades.
// The hang is given up at -upgrade-timeout, not later.
func TestFaultChildFailsInInit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, script, reason string
		timeout              time.Duration // -upgrade-timeout, 0 for the default
	}{
		{"crash", "kill -SEGV $$", "killed by signal SIGSEGV: segmentation fault", 0},
		{"exit", `echo "config invalid" >&2; exit 3`, "exit status 3", 0},
		{"init error", `exec "$GOOD" "$@" -socket "$DIR/missing/http.sock"`, "missing/http.sock", 0},
		{"hang", "exec sleep 600", "upgrade timeout", hangTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			if tc.timeout > 0 {
				args = []string{"-upgrade-timeout", tc.timeout.String()}
			}
			f := startFault(t, args...)
			f.deploy(tc.script)
			start := time.Now()
			f.failedUpgrade(tc.reason)
			if tc.timeout > 0 {
				// Given up at the timeout: SIGTERM ends the hung child
				// at once, so the failure comes well before the
				// timeout plus the kill grace (5 s) and some slack.
				took := time.Since(start)
				t.Logf("given up after %v with -upgrade-timeout %v", took.Round(time.Millisecond), tc.timeout)
				if took < tc.timeout || took > tc.timeout+15*time.Second {
					t.Errorf("upgrade failed after %v, want between %v and %v", took, tc.timeout, tc.timeout+15*time.Second)
				}
			}
			f.redeploy()
			f.upgradeAndStop()
		})
	}
}

// TestFaultEMFILE: next generations that may hold only 8, 10 or 12
// descriptors (a hard limit, which Go cannot raise) fail before the commit:
// the Go runtime cannot start, or receiving the handoff or listening hits
// EMFILE. Those given 14, 16 or 20 get through to Ready, which would leave
// them too few to accept: Ready refuses, saying so. No request fails: they
// accept nothing before the commit. Then a generation with 256 descriptors
// takes over and serves.
func TestFaultEMFILE(t *testing.T) {
	t.Parallel()
	f := startFault(t)
	for _, n := range []int{8, 10, 12} {
		f.deploy(fmt.Sprintf(`exec prlimit --nofile=%d:%d "$GOOD" "$@"`, n, n))
		f.failedUpgrade("failed")
	}
	for _, n := range []int{14, 16, 20} {
		f.deploy(fmt.Sprintf(`exec prlimit --nofile=%d:%d "$GOOD" "$@"`, n, n))
		f.failedUpgrade(fmt.Sprintf("free under the limit of %d (RLIMIT_NOFILE), and a new generation needs 16", n))
	}
	f.deploy(`exec prlimit --nofile=256:256 "$GOOD" "$@"`)
	f.upgradeAndStop()
}

// TestFaultPIDFileDiskFullOrReadOnly: the pid file's directory is a small
// tmpfs in a mount namespace of the service's own. Full, or remounted
// read-only, it makes each next generation fail at Ready, after it has
// listened: no request fails, the old generation keeps the pid file. Freed
// or remounted read-write, the upgrades go on. A final stop on the
// read-only directory logs the pid file it could not remove.
func TestFaultPIDFileDiskFullOrReadOnly(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"full", "read-only"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ns := newMountNS(t)
			f := &fault{t: t, dir: t.TempDir()}
			f.bin = filepath.Join(f.dir, "http")
			f.good = filepath.Join(f.dir, "http.good")
			install(t, program.Path, f.bin)
			install(t, program.Path, f.good)
			f.srv = ns.start(t, f.bin, "-addr", "127.0.0.1:0")
			f.startLoads(f.srv.Listener(t).Addr)
			f.waitServed(f.srv.PID())

			switch mode {
			case "full":
				fillUp(t, ns.view)
			case "read-only":
				ns.mount(t, "-o", "remount,ro", ns.dir)
			}
			for range 3 {
				if mode == "full" {
					f.failedUpgrade("no space left on device")
				} else {
					f.failedUpgrade("read-only file system")
				}
			}
			if mode == "read-only" {
				// The final stop cannot remove the pid file: it says so.
				f.stopLoads(0)
				from := f.srv.Stderr.Len()
				f.srv.StopClean(t)
				f.srv.Stderr.Wait(t, from, "pid file left behind", "read-only file system")
				return
			}
			unfill(t, ns.view)
			f.upgradeAndStop()
		})
	}
}

// TestFaultParentKilled: the serving generation is SIGKILLed before the
// handoff (the next one has started but not yet read it), during it, or
// after it (the next one is ready; the old one drains).
//   - before: the next generation says the parent is gone and exits; the
//     service is down (what is left is Restart= under systemd).
//   - during: either the next generation had been acknowledged and serves,
//     or it says why it cannot and exits.
//   - after: the next generation serves; only requests in flight in the
//     killed one fail.
func TestFaultParentKilled(t *testing.T) {
	t.Parallel()
	t.Run("before", func(t *testing.T) {
		t.Parallel()
		f := startFault(t)
		started, gate := filepath.Join(f.dir, "started"), filepath.Join(f.dir, "go")
		for _, p := range []string{started, gate} {
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		f.deploy(`echo $$ > "$DIR/started"; read _ < "$DIR/go"; exec "$GOOD" "$@"`)
		from := f.srv.Stderr.Len()
		if err := syscall.Kill(f.srv.PID(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		child := readFIFO(t, started)
		before := totalFailures(f.loads)
		if exit, err := f.srv.Signal(context.Background(), syscall.SIGKILL); err != nil || exit.Signal != syscall.SIGKILL {
			t.Fatalf("SIGKILL: %v %v", exit, err)
		}
		writeFIFO(t, gate)
		code := waitExit(t, child)
		line, _ := f.srv.Stderr.Wait(t, from, "inherit from parent failed")
		t.Logf("next generation: exit status %d: %s", code, line)
		if code == 0 {
			t.Error("the next generation exited 0 without a parent")
		}
		if before != 0 {
			t.Errorf("%d requests failed before the kill", before)
		}
		for _, l := range f.loads {
			l.Stop()
		}
	})
	t.Run("during", func(t *testing.T) {
		t.Parallel()
		f := startFault(t)
		old := f.srv.PID()
		from := f.srv.Stderr.Len()
		if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// The child has read the files: it is between New and its
		// parent's acknowledgement of its Ready, or just past it.
		line, _ := f.srv.Stderr.Wait(t, from, "inherited from parent")
		child, _ := strconv.Atoi(fieldOf(line, "pid"))
		if child == 0 {
			t.Fatalf("no child pid in %q", line)
		}
		if _, err := f.srv.Signal(context.Background(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := totalFailures(f.loads)
		code, alive := waitExitOrServe(t, f, child)
		if alive {
			t.Logf("the next generation had been acknowledged: it serves")
			f.stopLoads(killed + 2*faultClients)
			stopOrphan(t, child)
			return
		}
		t.Logf("the next generation exited with status %d", code)
		if code == 0 {
			t.Error("a next generation left without a parent exited 0")
		}
		for _, l := range f.loads {
			l.Stop()
		}
	})
	t.Run("after", func(t *testing.T) {
		t.Parallel()
		f := startFault(t)
		old := f.srv.PID()
		line := f.upgradeOutcome(old)
		if !strings.Contains(line, "upgrade succeeded") {
			t.Fatal(line)
		}
		child, _ := strconv.Atoi(fieldOf(line, "child_pid"))
		if _, err := f.srv.Signal(context.Background(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		f.waitServed(child)
		f.waitServed(child) // and again: no failure after the first answers
		f.stopLoads(2 * faultClients)
		if code := stopOrphan(t, child); code != 0 {
			t.Errorf("the next generation exited %d at SIGTERM, want 0", code)
		}
	})
}

// startLingering starts the service with -linger, which keeps an old
// generation alive after its drain (under this load the drain ends within
// milliseconds of the handover), and upgrades it once.
func startLingering(t *testing.T) (f *fault, old, child int) {
	t.Helper()
	f = startFault(t, "-linger", "10m")
	old = f.srv.PID()
	line := f.upgradeOutcome(old)
	if !strings.Contains(line, "upgrade succeeded") {
		t.Fatal(line)
	}
	child, _ = strconv.Atoi(fieldOf(line, "child_pid"))
	return f, old, child
}

// TestFaultChildKilledAfterReady: the next generation is SIGKILLed just
// after it became ready. The old generation, draining, takes the service
// back: it serves again from the sockets it holds (the queued connections
// are answered), names itself in the pid file, and logs the successor's
// death. Only the requests in flight in the killed one fail.
func TestFaultChildKilledAfterReady(t *testing.T) {
	t.Parallel()
	f, old, child := startLingering(t)
	from := f.srv.Stderr.Len()
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, child)
	line, _ := f.srv.Stderr.Wait(t, from, "taking the service back", strconv.Itoa(child))
	t.Logf("old generation: %s", line)
	if !strings.Contains(line, "\terror\t") || !strings.Contains(line, "killed by signal SIGKILL") {
		t.Errorf("the take-back is not logged as an error naming the signal: %s", line)
	}
	if got := waitPIDFileIs(t, f.srv.PIDFile, old); got != old {
		t.Fatalf("pid file names %d, want the old generation %d back", got, old)
	}
	f.waitServed(old)
	f.waitServed(old)
	f.stopLoads(2 * faultClients)
	f.srv.StopClean(t)
}

// TestFaultSuccessorStopsOnPurpose: a successor that stops on purpose
// (the operator stops the service with SIGTERM) is not taken back from,
// even by an old generation that is still there.
func TestFaultSuccessorStopsOnPurpose(t *testing.T) {
	t.Parallel()
	f, old, child := startLingering(t)
	f.waitServed(child)
	f.stopLoads(0)
	from := f.srv.Stderr.Len()
	stopOrphan(t, child)
	f.srv.Stderr.Wait(t, from, "successor leaves on purpose", strconv.Itoa(child))
	from = f.srv.Stderr.Len()
	if err := syscall.Kill(old, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f.srv.Stderr.Wait(t, from, "stopped", strconv.Itoa(old))
	if log := f.srv.Stderr.String(); strings.Contains(log, "taking the service back") {
		t.Errorf("the old generation took the service back from a successor that stopped on purpose:\n%s", log)
	}
}

// TestFaultDeletedBinary: the binary the service was started from is
// removed (a deploy that deleted it instead of replacing it). The next
// generation runs the old image again: the upgrade works and costs no
// request, and the log warns that it changed nothing, naming the path that
// is gone.
func TestFaultDeletedBinary(t *testing.T) {
	t.Parallel()
	f := startFault(t)
	if err := os.Remove(f.bin); err != nil {
		t.Fatal(err)
	}
	old := f.srv.PID()
	from := f.srv.Stderr.Len()
	line := f.upgradeOutcome(old)
	if !strings.Contains(line, "upgrade succeeded") {
		t.Fatalf("upgrade: %s", line)
	}
	warn, _ := f.srv.Stderr.Wait(t, from, "executable gone")
	t.Logf("old generation: %s", warn)
	for _, want := range []string{"warn", "does not change the version", `"path": "` + f.bin + `"`, "no such file or directory"} {
		if !strings.Contains(warn, want) {
			t.Errorf("the warning does not say %q", want)
		}
	}
	child, _ := strconv.Atoi(fieldOf(line, "child_pid"))
	f.waitServed(child)
	f.stopLoads(0)
	f.srv.StopClean(t)
}

// TestFaultStrayEnvironment: a process started with a TABLEFLIP_HANDOFF
// that no parent set (garbage, a number that is no descriptor, a regular
// file, a socket nobody holds the other end of) refuses to start at once,
// with a clear error, while the service it was meant to join serves on. Stray
// systemd variables (LISTEN_FDS for another pid) are ignored, and the
// upgrades work.
func TestFaultStrayEnvironment(t *testing.T) {
	t.Parallel()
	f := startFault(t)
	file, err := os.CreateTemp(f.dir, "stray")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(sp[0]), "peer")
	sock := os.NewFile(uintptr(sp[1]), "stray-socket")
	defer peer.Close()
	defer sock.Close()
	for _, tc := range []struct {
		name, value string
		extra       *os.File
		want        string // what the refusal says, besides the variable's name
	}{
		{"garbage", "yes please", nil, "not a file descriptor number"},
		{"negative", "-1", nil, "not a file descriptor number"},
		{"no such descriptor", "77", nil, "not a socket"},
		{"regular file", "3", file, "not a socket"},
		{"socket with nobody at the other end", "3", sock, "nothing at the other end: no parent is waiting"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
		cmd := program.Command(ctx, "-addr", "127.0.0.1:0")
		cmd.Env = append(cmd.Env, "TABLEFLIP_HANDOFF="+tc.value)
		if tc.extra != nil {
			cmd.ExtraFiles = []*os.File{tc.extra}
		}
		if tc.extra == sock {
			// Nobody answers on the other end: the refusal must not
			// wait for the upgrade timeout.
			peer.Close()
		}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("%s: %v, want a non-zero exit; output:\n%s", tc.name, err, out)
			continue
		}
		if !strings.Contains(string(out), "TABLEFLIP_HANDOFF") || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: unclear refusal:\n%s", tc.name, out)
		}
		t.Logf("%s: refused in %v: %s", tc.name, time.Since(start).Round(time.Millisecond), lastLine(out))
	}
	f.waitServed(f.srv.PID())

	// Stray systemd variables in the service's environment.
	g := startFaultEnv(t, "LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=stray")
	g.srv.UpgradeUnderLoad(t, g.srv.Listener(t), 3, g.loads...)
	g.stopLoads(0)
	g.srv.StopClean(t)

	f.stopLoads(0)
	f.srv.StopClean(t)
}

func startFaultEnv(t *testing.T, env ...string) *fault {
	t.Helper()
	p := program
	p.Env = append(append([]string(nil), p.Env...), env...)
	f := &fault{t: t, dir: t.TempDir()}
	f.srv = p.Start(t, "-addr", "127.0.0.1:0")
	f.startLoads(f.srv.Listener(t).Addr)
	f.waitServed(f.srv.PID())
	return f
}

// TestFaultRapidSIGHUP: bursts of 50 SIGHUPs back to back each give one
// upgrade (the others are coalesced into it), no pile-up of generations,
// and no failed request.
func TestFaultRapidSIGHUP(t *testing.T) {
	t.Parallel()
	f := startFault(t)
	for burst := range 3 {
		from := f.srv.Stderr.Len()
		pid := f.srv.PID()
		for range 49 {
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		up, err := f.srv.Upgrade(context.Background()) // the 50th
		if err != nil {
			t.Fatalf("burst %d: %v", burst, err)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			t.Errorf("burst %d: old generation %v", burst, up.OldExit)
		}
		f.waitServed(up.NewPID)
		if n := strings.Count(strings.Join(linesFrom(f.srv.Stderr, from), "\n"), "upgrade started"); n != 1 {
			t.Errorf("burst %d: %d upgrades started, want 1", burst, n)
		}
		if kids := descendants(up.NewPID); len(kids) != 0 {
			t.Errorf("burst %d: the new generation has children %v", burst, kids)
		}
	}
	f.stopLoads(0)
	f.srv.StopClean(t)
}

// TestFaultTwoInstances: a second instance given the same pid file (on
// another port) refuses to start while the first one serves, before and
// after the first one upgrades; the first one loses no request and keeps
// its pid file.
func TestFaultTwoInstances(t *testing.T) {
	t.Parallel()
	f := startFault(t)
	second := func(when string) {
		t.Helper()
		out, code := program.Run(t, "-addr", "127.0.0.1:0", "-pidfile", f.srv.PIDFile)
		if code == 0 || !strings.Contains(out, "pid file in use by a running instance") {
			t.Errorf("%s: second instance: exit status %d, output:\n%s", when, code, out)
		}
		if got, _ := loadtest.ReadPIDFile(f.srv.PIDFile); got != f.srv.PID() {
			t.Errorf("%s: pid file names %d, want %d", when, got, f.srv.PID())
		}
	}
	second("first generation")
	up, err := f.srv.Upgrade(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.waitServed(up.NewPID)
	second("after an upgrade")
	f.waitServed(up.NewPID)
	f.stopLoads(0)
	f.srv.StopClean(t)
}

// --- helpers ---

func totalFailures(loads []*loadtest.Load) int64 {
	var n int64
	for _, l := range loads {
		n += l.Stats().Failures
	}
	return n
}

func fieldOf(line, name string) string {
	i := strings.Index(line, `"`+name+`": `)
	if i < 0 {
		return ""
	}
	rest := line[i+len(name)+4:]
	end := strings.IndexAny(rest, ",}")
	if end < 0 {
		return ""
	}
	return strings.Trim(rest[:end], `" `)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func linesFrom(l *exampletest.Log, from int) []string {
	all := strings.Split(l.String(), "\n")
	if from > len(all) {
		return nil
	}
	return all[from:]
}

func descendants(pid int) []int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// readFIFO opens the FIFO at path, which a script writes a pid into, and
// returns that pid.
func readFIFO(t *testing.T, path string) int {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(path)
		got <- strings.TrimSpace(string(b))
	}()
	select {
	case s := <-got:
		pid, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: %q", path, s)
		}
		return pid
	case <-time.After(loadtest.DefaultTimeout):
		t.Fatalf("nothing written to %s", path)
	}
	return 0
}

// writeFIFO opens the FIFO at path, which a script waits on, and writes a
// line.
func writeFIFO(t *testing.T, path string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(path, []byte("go\n"), 0) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(loadtest.DefaultTimeout):
		t.Fatalf("nobody reads %s", path)
	}
}

// waitExit waits for pid, a child of this process (a generation orphaned
// to it, the subreaper), to exit, reaps it and returns its exit status
// (-1 when killed by a signal).
func waitExit(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd of %d: %v", pid, err)
	}
	defer unix.Close(fd)
	if !pollIn(fd, loadtest.DefaultTimeout) {
		t.Fatalf("pid %d still running after %v", pid, loadtest.DefaultTimeout)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil {
		return -1 // not ours to reap
	}
	if ws.Exited() {
		return ws.ExitStatus()
	}
	return -1
}

func pollIn(fd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return false
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, ms)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// waitExitOrServe waits until child either exits (its status, false) or
// serves the loads (true).
func waitExitOrServe(t *testing.T, f *fault, child int) (int, bool) {
	t.Helper()
	fd, err := unix.PidfdOpen(child, 0)
	if err != nil {
		return -1, false // gone already, and reaped
	}
	served := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	go func() { served <- f.loads[0].WaitServed(ctx, child, 5) }()
	exited := make(chan bool, 1)
	go func() { exited <- pollIn(fd, loadtest.DefaultTimeout) }()
	select {
	case err := <-served:
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		return 0, true
	case <-exited:
		unix.Close(fd)
		cancel()
		<-served
		var ws unix.WaitStatus
		if _, err := unix.Wait4(child, &ws, 0, nil); err != nil || !ws.Exited() {
			return -1, false
		}
		return ws.ExitStatus(), false
	}
}

// stopOrphan sends SIGTERM to pid, a generation orphaned to this process,
// and returns its exit status.
func stopOrphan(t *testing.T, pid int) int {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return waitExit(t, pid)
}

// waitPIDFileIs waits, bounded, for the pid file to name pid.
func waitPIDFileIs(t *testing.T, path string, pid int) int {
	t.Helper()
	return waitPIDFile(t, path, func(p int) bool { return p == pid })
}

func waitPIDFile(t *testing.T, path string, ok func(int) bool) int {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_DELETE); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(loadtest.DefaultTimeout)
	buf := make([]byte, 4096)
	for {
		for {
			if _, err := unix.Read(fd, buf); err != nil {
				break
			}
		}
		p, _ := loadtest.ReadPIDFile(path)
		if ok(p) {
			return p
		}
		if !pollIn(fd, time.Until(deadline)) {
			return p
		}
	}
}

// mountNS is a private mount namespace, held open by a sleeping process,
// where dir is a small tmpfs; view is dir as this process sees it (through
// the holder's /proc root).
type mountNS struct {
	holder *exec.Cmd
	dir    string
	view   string
}

func newMountNS(t *testing.T) *mountNS {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=256k,nr_inodes=64,mode=0755 tableflip-faults "$0" && echo mounted && exec sleep 3600`, dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Skipf("unshare: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		if l != "mounted" {
			t.Fatalf("mount namespace: %q", l)
		}
	case <-time.After(loadtest.DefaultTimeout):
		t.Fatal("mount namespace not set up")
	}
	return &mountNS{holder: cmd, dir: dir, view: fmt.Sprintf("/proc/%d/root%s", cmd.Process.Pid, dir)}
}

// mount runs mount with args in the namespace.
func (ns *mountNS) mount(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(ns.holder.Process.Pid), "-m", "mount"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount %v: %v\n%s", args, err, out)
	}
}

// start starts bin in the namespace with -pidfile in the tmpfs.
func (ns *mountNS) start(t *testing.T, bin string, args ...string) *exampletest.Server {
	t.Helper()
	pidFile := filepath.Join(ns.dir, "http.pid")
	p := exampletest.Program{Path: bin, Env: program.Env}
	cmd := p.Command(context.Background(), append(args, "-pidfile", pidFile)...)
	cmd.Path, _ = exec.LookPath("nsenter")
	cmd.Args = append([]string{"nsenter", "-t", strconv.Itoa(ns.holder.Process.Pid), "-m", "--", bin}, cmd.Args[1:]...)
	s := &exampletest.Server{PIDFile: filepath.Join(ns.view, "http.pid"), Stdout: exampletest.NewLog(t, ""), Stderr: exampletest.NewLog(t, "server: ")}
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	srv, err := loadtest.StartServer(context.Background(), cmd, s.PIDFile)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, s.Stderr)
	}
	t.Cleanup(func() { srv.Close() })
	s.Server = srv
	return s
}

// fillUp creates files in dir until its file system, which has few
// inodes, has none left: creating a file then fails with ENOSPC, as on a
// full disk. (Filling its blocks instead is not exact: tmpfs counts them
// per CPU, and a small write may still pass.)
func fillUp(t *testing.T, dir string) {
	t.Helper()
	for i := 0; ; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("fill-%d", i)))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
		f.Close()
	}
}

func unfill(t *testing.T, dir string) {
	t.Helper()
	fills, _ := filepath.Glob(filepath.Join(dir, "fill-*"))
	for _, f := range fills {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFaultTakeBackIsTheParentsOnly: three generations, the first two
// lingering. When the third dies, the second, its parent, takes the service
// back; the first, whose successor (the second) left on purpose at its own
// handover, does not.
func TestFaultTakeBackIsTheParentsOnly(t *testing.T) {
	t.Parallel()
	f, first, second := startLingering(t)
	f.waitServed(second)
	from := f.srv.Stderr.Len()
	line := f.upgradeOutcome(second)
	if !strings.Contains(line, "upgrade succeeded") {
		t.Fatal(line)
	}
	third, _ := strconv.Atoi(fieldOf(line, "child_pid"))
	f.srv.Stderr.Wait(t, from, "successor leaves on purpose", strconv.Itoa(second))
	f.waitServed(third)
	from = f.srv.Stderr.Len()
	if err := syscall.Kill(third, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	line, _ = f.srv.Stderr.Wait(t, from, "taking the service back", strconv.Itoa(third))
	if fieldOf(line, "pid") != strconv.Itoa(second) {
		t.Errorf("taken back by %s, want the dead one's parent %d: %s", fieldOf(line, "pid"), second, line)
	}
	if got := waitPIDFileIs(t, f.srv.PIDFile, second); got != second {
		t.Fatalf("pid file names %d, want %d", got, second)
	}
	f.waitServed(second)
	f.stopLoads(2 * faultClients)
	for _, pid := range []int{second, first} {
		from = f.srv.Stderr.Len()
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		f.srv.Stderr.Wait(t, from, "stopped", fmt.Sprintf(`"pid": %d,`, pid))
	}
	if n := strings.Count(f.srv.Stderr.String(), "taking the service back"); n != 1 {
		t.Errorf("%d take-backs logged, want 1 (by the second generation only)", n)
	}
}
