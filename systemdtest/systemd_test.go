//go:build systemdtest && linux

package systemdtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

const reloads = 5

func TestMain(m *testing.M) { os.Exit(m.Run()) }

// unit is one of examples/systemd's recommended units.
type unit struct {
	service, socket string
	port            string // the port in the shipped file
	minVersion      int
}

var units = []unit{
	{service: "app.service", port: "8080"},
	{service: "app-reload.service", port: "8081", minVersion: 253},
	{service: "app-socket.service", socket: "app-socket.socket", port: "8082"},
}

func TestSystemd(t *testing.T) {
	if err := namespacesPermitted(); err != nil {
		t.Skipf("skipped: namespaces are not permitted here: %v", err)
	}
	bins := buildBinaries(t)
	tree254 := os.Getenv("TFTEST_SYSTEMD_254")
	if tree254 == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		tree254 = filepath.Join(cache, "tableflip-systemdtest", "systemd-254")
	}
	if _, err := os.Stat(filepath.Join(tree254, ".complete")); err != nil {
		t.Fatalf("systemd 254 is not in %s: run systemdtest/fetch-systemd.sh %s", tree254, tree254)
	}
	for _, v := range []struct {
		name    string
		version int
		tree    string
	}{{"252", 252, ""}, {"254", 254, tree254}} {
		t.Run("systemd"+v.name, func(t *testing.T) {
			start := time.Now()
			ports := map[string]string{}
			for _, u := range units {
				ports[u.port] = freePort(t)
			}
			ports["legacy"] = freePort(t)
			ports["takeback"] = freePort(t)
			stage := stageDir(t, bins, ports)
			m := boot(t, v.name, v.tree, stage)
			out, _ := m.systemctl("--version")
			t.Logf("booted %s in %v", strings.SplitN(out, "\n", 2)[0], time.Since(start).Round(time.Millisecond))
			for _, u := range units {
				if v.version < u.minVersion {
					continue
				}
				t.Run(strings.TrimSuffix(u.service, ".service"), func(t *testing.T) {
					runUnit(t, m, u, "127.0.0.1:"+ports[u.port])
				})
			}
			t.Run("legacy-kill-HUP-unit", func(t *testing.T) { runLegacy(t, m, "127.0.0.1:"+ports["legacy"]) })
			t.Run("takeback", func(t *testing.T) { runTakeBack(t, m, "127.0.0.1:"+ports["takeback"]) })
			t.Logf("systemd %s: all scenarios in %v", v.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

type binaries struct{ app, ctl, broken string }

func buildBinaries(t *testing.T) binaries {
	dir := t.TempDir()
	ctx := context.Background()
	var b binaries
	var err error
	if b.app, err = loadtest.Build(ctx, dir, "../examples/http"); err != nil {
		t.Fatal(err)
	}
	if b.ctl, err = loadtest.Build(ctx, dir, "../cmd/tableflipctl"); err != nil {
		t.Fatal(err)
	}
	if b.broken, err = loadtest.Build(ctx, dir, "./testdata/broken"); err != nil {
		t.Fatal(err)
	}
	return b
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// stageDir holds what boot.sh copies into the namespace's /run: the
// binaries, and the shipped unit files with the binaries' path and the
// ports changed, each with a drop-in that takes it out of the boot's
// default dependencies (the targets they order against are masked).
func stageDir(t *testing.T, b binaries, ports map[string]string) string {
	stage := t.TempDir()
	bin := filepath.Join(stage, "bin")
	units := filepath.Join(stage, "units")
	for _, d := range []string{bin, units} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, src := range map[string]string{"app": b.app, "good": b.app, "tableflipctl": b.ctl, "broken": b.broken} {
		copyFile(t, src, filepath.Join(bin, name))
	}
	shipped, err := filepath.Glob("../examples/systemd/*.s*")
	if err != nil || len(shipped) == 0 {
		t.Fatalf("no unit files in examples/systemd: %v", err)
	}
	for _, f := range shipped {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(text), "/usr/local/bin/", "/run/tftest/bin/")
		for from, to := range ports {
			if from == "legacy" || from == "takeback" {
				continue
			}
			s = strings.ReplaceAll(s, "127.0.0.1:"+from, "127.0.0.1:"+to)
		}
		name := filepath.Base(f)
		writeFile(t, filepath.Join(units, name), s)
		writeFile(t, filepath.Join(units, name+".d", "tftest.conf"), "[Unit]\nDefaultDependencies=no\n")
	}
	// The unit the docs recommended before: the control experiment.
	writeFile(t, filepath.Join(units, "legacy.service"), `[Unit]
DefaultDependencies=no
[Service]
Type=notify
ExecStart=/run/tftest/bin/app -addr 127.0.0.1:`+ports["legacy"]+`
ExecReload=/bin/kill -HUP $MAINPID
TimeoutStopSec=60
SyslogIdentifier=legacy
`)
	writeFile(t, filepath.Join(units, "takeback.service"), takeBackUnit(ports["takeback"]))
	writeFile(t, filepath.Join(units, "tftest.target"), `[Unit]
Description=tableflip systemd tests
DefaultDependencies=no
Wants=systemd-journald.service
After=systemd-journald.service
`)
	return stage
}

func writeFile(t *testing.T, path, text string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// deploy replaces the service's binary inside the namespace, atomically.
func deploy(t *testing.T, m *machine, name string) {
	src := m.file("/run/tftest/bin/" + name)
	tmp := m.file("/run/tftest/bin/.app.new")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, m.file("/run/tftest/bin/app")); err != nil {
		t.Fatal(err)
	}
}

func runUnit(t *testing.T, m *machine, u unit, addr string) {
	start := time.Now()
	svc := u.service
	var inode uint64
	if u.socket != "" {
		if out, err := m.systemctl("start", u.socket); err != nil {
			t.Fatalf("start %s: %v\n%s", u.socket, err, out)
		}
		var err error
		if inode, err = loadtest.ListenerInode("tcp", addr); err != nil {
			t.Fatalf("the socket unit's listener: %v", err)
		}
		defer m.systemctl("stop", u.socket)
	}
	if out, err := m.systemctl("start", svc); err != nil {
		t.Fatalf("start %s: %v\n%s\n%s\n%s", svc, err, out, m.journal(svc), m.journalIdent(strings.TrimSuffix(svc, ".service")))
	}
	first := mainPID(t, m, svc)
	if pid := get(t, addr); pid != first {
		t.Fatalf("served by pid %d, MainPID is %d", pid, first)
	}
	checkInode := func(when string) {
		if u.socket == "" {
			return
		}
		got, err := loadtest.ListenerInode("tcp", addr)
		if err != nil || got != inode {
			t.Errorf("%s: listening inode %d (%v), want the socket unit's %d", when, got, err, inode)
		}
	}

	// A reload whose upgrade fails: the reload fails and the service serves on.
	deploy(t, m, "broken")
	out, err := m.systemctl("reload", svc)
	deploy(t, m, "good")
	if err == nil {
		t.Errorf("reload with a broken build succeeded: %s", out)
	} else {
		t.Logf("failing reload: systemctl reload: %v: %s", err, strings.TrimSpace(out))
	}
	if pid := mainPID(t, m, svc); pid != first {
		t.Errorf("after the failed reload MainPID is %d, want %d", pid, first)
	}
	if pid := get(t, addr); pid != first {
		t.Errorf("after the failed reload served by %d, want %d", pid, first)
	}
	if j := m.journal(svc); !strings.Contains(j, `config check failed: no such setting \"listen\"`) &&
		!strings.Contains(j, `config check failed: no such setting "listen"`) {
		t.Errorf("the child's reason is not in the journal:\n%s", j)
	}
	checkInode("after the failed reload")

	// 5 reloads under load, then a stop under load.
	l := startLoad(addr, 8)
	pids := []int{first}
	for i := range reloads {
		if err := l.waitServed(pids[len(pids)-1], 20); err != nil {
			t.Fatalf("reload %d: %v", i+1, err)
		}
		out, err := m.systemctl("reload", svc)
		if err != nil {
			t.Fatalf("reload %d: %v: %s\n%s", i+1, err, out, m.journal(svc))
		}
		pid := mainPID(t, m, svc)
		if pid == pids[len(pids)-1] {
			t.Fatalf("reload %d: MainPID still %d", i+1, pid)
		}
		pids = append(pids, pid)
		checkInode(fmt.Sprintf("after reload %d", i+1))
	}
	if err := l.waitServed(pids[len(pids)-1], 20); err != nil {
		t.Fatal(err)
	}
	l.stopping.Store(true) // no new connection from here on; open ones go on
	stopStart := time.Now()
	out, err = m.systemctl("stop", svc)
	stopTook := time.Since(stopStart)
	st := l.stop()
	if err != nil {
		t.Errorf("stop: %v: %s", err, out)
	}
	checkInode("after the stop")

	result, status := m.show(svc, "Result"), m.show(svc, "ExecMainStatus")
	j := m.journal(svc)
	drained := regexp.MustCompile(`(?m)\bdrained\b`).FindAllString(j, -1)
	notOurChild := strings.Count(j, "which is not our child")
	t.Logf("%s: %d reloads + 1 failed reload, %d requests, %d failed, %d serving pids; stop took %v; Result=%s ExecMainStatus=%s; %d drained lines; %d \"not our child\" lines; whole unit %v",
		svc, reloads, st.ok, st.failed, len(st.pids), stopTook.Round(time.Millisecond), result, status, len(drained), notOurChild, time.Since(start).Round(time.Millisecond))
	if st.failed != 0 {
		t.Errorf("%d failed requests: %v", st.failed, st.errors)
	}
	if len(st.pids) < reloads+1 {
		t.Errorf("served by %d pids, want %d", len(st.pids), reloads+1)
	}
	if result != "success" {
		t.Errorf("Result=%s, want success", result)
	}
	for _, bad := range []string{"SIGKILL", "stop-sigkill", "Killing process"} {
		if strings.Contains(j, bad) {
			t.Errorf("the journal says %q:\n%s", bad, j)
		}
	}
	if len(drained) != reloads+1 {
		t.Errorf("%d generations logged \"drained\", want %d:\n%s", len(drained), reloads+1, j)
	}
	if u.socket != "" {
		// systemd still listens: a connection starts the service again.
		pid := get(t, addr)
		if main := mainPID(t, m, svc); main != pid {
			t.Errorf("after the stop, a connection was answered by %d; MainPID is %d", pid, main)
		}
		checkInode("after the restart by a connection")
	}
	if t.Failed() {
		t.Logf("journal of %s:\n%s", svc, j)
	}
}

func mainPID(t *testing.T, m *machine, svc string) int {
	pid, err := strconv.Atoi(m.show(svc, "MainPID"))
	if err != nil || pid == 0 {
		t.Fatalf("MainPID of %s: %d %v", svc, pid, err)
	}
	return pid
}

func get(t *testing.T, addr string) int {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pid, ok := loadtest.ParsePID(b)
	if !ok {
		t.Fatalf("answer without a pid: %q", b)
	}
	return pid
}

// load is HTTP clients, half on keep-alive connections and half with a new
// connection per request, that count every failed request. Once stopping
// is set they open no new connection (a stop is under way: a connection
// to a closed port would be refused, not lost) but go on over the ones
// they have until the server closes them.
type load struct {
	stopping atomic.Bool
	wg       sync.WaitGroup
	cancel   context.CancelFunc
	mu       sync.Mutex
	stats    loadStats
	changed  chan struct{}
}

type loadStats struct {
	ok, failed int
	errors     []string
	pids       map[int]int
}

var errStopping = fmt.Errorf("stopping: no new connection")

func startLoad(addr string, clients int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, stats: loadStats{pids: map[int]int{}}, changed: make(chan struct{})}
	for i := range clients {
		var d net.Dialer
		tr := &http.Transport{
			DisableKeepAlives: i%2 == 1,
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				if l.stopping.Load() {
					return nil, errStopping
				}
				return d.DialContext(ctx, network, a)
			},
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			for ctx.Err() == nil {
				// POST: net/http does not silently retry it on a reused
				// connection, so every failure is counted.
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/", http.NoBody)
				resp, err := c.Do(req)
				if err != nil && (ctx.Err() != nil || strings.Contains(err.Error(), errStopping.Error())) {
					return
				}
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				pid, ok := loadtest.ParsePID(body)
				l.mu.Lock()
				if err != nil || resp.StatusCode != 200 || !ok {
					l.stats.failed++
					if len(l.stats.errors) < 10 {
						l.stats.errors = append(l.stats.errors, fmt.Sprintf("%v %q", err, body))
					}
				} else {
					l.stats.ok++
					l.stats.pids[pid]++
				}
				close(l.changed)
				l.changed = make(chan struct{})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// waitServed waits until pid has answered n requests.
func (l *load) waitServed(pid, n int) error {
	deadline := time.After(60 * time.Second)
	for {
		l.mu.Lock()
		got, ch := l.stats.pids[pid], l.changed
		l.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-deadline:
			return fmt.Errorf("pid %d answered %d requests in 60s, want %d", pid, got, n)
		}
	}
}

func (l *load) stop() loadStats {
	l.stopping.Store(true)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done: // every client's connections were closed by the server
	case <-time.After(30 * time.Second):
	}
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// runLegacy is the control experiment: the unit without the command
// (ExecReload=/bin/kill -HUP $MAINPID, no ExecStop=). Its reload onto a
// broken build succeeds, and its stop after an upgrade is a SIGKILL.
func runLegacy(t *testing.T, m *machine, addr string) {
	const svc = "legacy.service"
	if out, err := m.systemctl("start", svc); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	first := mainPID(t, m, svc)
	deploy(t, m, "broken")
	out, err := m.systemctl("reload", svc)
	if err != nil {
		t.Errorf("kill -HUP reload onto a broken build failed (%v: %s); it used to succeed", err, out)
	}
	waitJournal(t, m, svc, "upgrade failed", 1)
	deploy(t, m, "good")
	if _, err := m.systemctl("reload", svc); err != nil {
		t.Fatal(err)
	}
	waitJournal(t, m, svc, "drained", 1) // the first generation has handed over and exited
	second := mainPID(t, m, svc)
	if second == first {
		t.Fatalf("MainPID still %d after the upgrade", first)
	}
	if pid := get(t, addr); pid == first {
		t.Fatalf("still served by %d", pid)
	}
	m.systemctl("stop", svc)
	j := m.journal(svc)
	result := m.show(svc, "Result")
	killed := strings.Contains(j, "SIGKILL")
	for _, line := range strings.Split(j, "\n") {
		if strings.Contains(line, "SIGKILL") || strings.Contains(line, "result") {
			t.Logf("journal: %s", line)
		}
	}
	t.Logf("legacy unit: reload onto a broken build exited %v; stop after 1 upgrade: Result=%s, SIGKILL in the journal: %v, %d drained lines",
		err, result, killed, strings.Count(j, "drained"))
	if !strings.Contains(j, "which is not our child") {
		// systemd read MAINPID= only after the old generation had exited:
		// the new one was its child by then, and its stop is graceful.
		t.Logf("systemd took the new main pid as its own child this time (the race): no SIGKILL expected")
	} else if !killed {
		t.Errorf("the stop of an alien main pid alone in its cgroup was not a SIGKILL: the reason for ExecStop= is gone?\n%s", j)
	}
}

// waitJournal waits until the unit's journal has n lines containing s.
func waitJournal(t *testing.T, m *machine, unit, s string, n int) {
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(m.journal(unit), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the journal of %s after 60s:\n%s", s, unit, m.journal(unit))
		}
		time.Sleep(50 * time.Millisecond) // the journal has no event to wait on from here
	}
}
