package unixtransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
	unixtransport "github.com/tableflip-go/tableflip/transport/unix"
)

func pidOf(t *testing.T, line string) int {
	t.Helper()
	pid, err := strconv.Atoi(proctest.Fields(line)["pid"])
	if err != nil {
		t.Fatalf("no pid in %q", line)
	}
	return pid
}

// gen is a process tree of serverMain generations.
type gen struct {
	t   *testing.T
	p   *proctest.Proc
	pid int
}

func start(t *testing.T, network, path string, env ...string) *gen {
	t.Helper()
	p := proctest.Start(t, "server", append([]string{"TFTEST_NETWORK=" + network, "TFTEST_PATH=" + path}, env...)...)
	return &gen{t: t, p: p, pid: pidOf(t, p.Expect("READY "))}
}

// upgrade sends SIGHUP and waits for the new generation to be ready and
// the old one to have drained and exited.
func (g *gen) upgrade() {
	g.t.Helper()
	old := g.pid
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		g.t.Fatal(err)
	}
	g.pid = pidOf(g.t, g.p.Expect("READY "))
	g.p.Expect(fmt.Sprintf("UPGRADED pid=%d child=%d", old, g.pid))
	g.p.Expect(fmt.Sprintf("EXIT pid=%d", old))
}

// stop sends SIGTERM to the serving generation, waits for it to exit,
// and checks that the final stop removed the socket at name: its file, or
// for an abstract name, which has none, the name (nothing listens on it).
func (g *gen) stop(name string) {
	g.t.Helper()
	if err := syscall.Kill(g.pid, syscall.SIGTERM); err != nil {
		g.t.Fatal(err)
	}
	g.p.Expect(fmt.Sprintf("EXIT pid=%d", g.pid))
	proctest.WaitGone(g.t, g.pid)
	if !strings.HasPrefix(name, "@") {
		mustBeGone(g.t, name)
	} else if _, err := net.Dial("unix", name); !errors.Is(err, syscall.ECONNREFUSED) {
		g.t.Errorf("dial %s after the final stop: %v, want ECONNREFUSED", name, err)
	}
}

// wantServedBy fails the test unless GET / over the unix socket at path
// is answered by pid.
func wantServedBy(t *testing.T, path string, pid int) {
	t.Helper()
	c := &http.Client{Timeout: proctest.Timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://unix/")
	if err != nil {
		t.Fatalf("GET over %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), fmt.Sprintf("pid=%d", pid); got != want {
		t.Fatalf("GET over %s: answer %q, want %q", path, got, want)
	}
}

func fileID(t *testing.T, path string) (uint64, fs.FileMode, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Ino, fi.Mode(), st
}

// wantSameFile fails the test unless the file at path is still inode ino.
func wantSameFile(t *testing.T, path string, ino uint64) {
	t.Helper()
	if got, _, _ := fileID(t, path); got != ino {
		t.Fatalf("%s was replaced: inode %d, was %d", path, got, ino)
	}
}

func mustBeGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still exists after the final stop (lstat: %v)", path, err)
	}
}

// TestHTTPUnderLoadThroughUpgrades is the unix socket's promise: under
// load, through 20 upgrades, no request fails and the path never
// disappears; the final stop removes it.
func TestHTTPUnderLoadThroughUpgrades(t *testing.T) {
	t.Parallel()
	dir := proctest.ShortDir(t)
	path := filepath.Join(dir, "http.sock")
	pidFile := filepath.Join(dir, "pid")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "TFTEST_ROLE=server", "TFTEST_NETWORK=unix", "TFTEST_PATH="+path, "TFTEST_PIDFILE="+pidFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	ctx := context.Background()
	srv, err := loadtest.StartServer(ctx, cmd, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ino, _, _ := fileID(t, path)

	// The checker stats the path in a tight loop for the whole test.
	watch := proctest.WatchPath(t, path, uint64(ino))

	var loads []*loadtest.Load
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		l, err := loadtest.Start(loadtest.Config{
			Target:  loadtest.Target{URL: "http://unix/", UnixSocket: path},
			Mode:    mode,
			Clients: 4,
		})
		if err != nil {
			t.Fatal(err)
		}
		loads = append(loads, l)
	}
	stopLoads := func() []loadtest.Stats {
		var out []loadtest.Stats
		for _, l := range loads {
			out = append(out, l.Stop())
		}
		loads = nil
		return out
	}
	defer stopLoads()

	const upgrades = 20
	var latencies []time.Duration
	for i := 0; i < upgrades; i++ {
		for _, l := range loads {
			if err := l.WaitServed(ctx, srv.PID(), 20); err != nil {
				t.Fatal(err)
			}
		}
		up, err := srv.Upgrade(ctx)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i+1, err)
		}
		if up.OldExit.Code != 0 {
			t.Errorf("upgrade %d: old generation: %v", i+1, up.OldExit)
		}
		latencies = append(latencies, up.Latency)
	}
	for _, l := range loads {
		if err := l.WaitServed(ctx, srv.PID(), 20); err != nil {
			t.Fatal(err)
		}
	}
	stats := stopLoads()
	watch.Check(t)

	for _, s := range stats {
		t.Logf("%v", s)
		if s.Failures != 0 {
			t.Errorf("%s: %d failed requests: %v", s.Mode, s.Failures, s.Errors)
		}
		if len(s.Pids) != upgrades+1 {
			t.Errorf("%s: answers came from %d pids, want %d", s.Mode, len(s.Pids), upgrades+1)
		}
	}
	t.Logf("checker: %v; upgrade latencies %v", watch, latencies)

	exit, err := srv.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exit.Reaped && exit.Code != 0 {
		t.Errorf("SIGTERM: %v", exit)
	}
	mustBeGone(t, path)
}

// TestStaleSocketReplaced: a server killed with SIGKILL leaves its socket
// file; the next start replaces it.
func TestStaleSocketReplaced(t *testing.T) {
	t.Parallel()
	path := filepath.Join(proctest.ShortDir(t), "s.sock")
	g := start(t, "unix", path)
	oldIno, _, _ := fileID(t, path)
	syscall.Kill(g.pid, syscall.SIGKILL)
	proctest.WaitGone(t, g.pid)
	if _, mode, _ := fileID(t, path); mode.Type() != fs.ModeSocket {
		t.Fatalf("after SIGKILL the path is %v, want the stale socket", mode)
	}
	if _, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial the stale socket: %v, want ECONNREFUSED", err)
	}

	// A second name keeps the stale inode allocated, so that the new
	// file cannot get the same inode number.
	if err := os.Link(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	g2 := start(t, "unix", path)
	wantServedBy(t, path, g2.pid)
	if ino, _, _ := fileID(t, path); ino == oldIno {
		t.Errorf("the socket file is still the stale inode %d", ino)
	}
	g2.stop(path)
}

// TestLiveSocketOfAnotherProcessLeftAlone: a path a live server listens on
// is an error, and neither the server nor its file is touched.
func TestLiveSocketOfAnotherProcessLeftAlone(t *testing.T) {
	path := filepath.Join(proctest.ShortDir(t), "s.sock")
	g := start(t, "unix", path)
	ino, _, _ := fileID(t, path)
	for _, network := range []string{"unix", "unixpacket"} {
		upg := tablefliptest.New(nil)
		before := proctest.OpenFds()
		ln, err := unixtransport.Listen(context.Background(), upg, network, path)
		after := proctest.OpenFds()
		upg.Stop()
		if err == nil {
			ln.Close()
			t.Fatalf("%s: Listen on a live socket succeeded", network)
		}
		t.Logf("%s: %v", network, err)
		if !errors.Is(err, unixtransport.ErrAddressInUse) {
			t.Errorf("%s: error %v does not wrap ErrAddressInUse", network, err)
		}
		if after != before {
			t.Errorf("%s: %d fds before Listen, %d after", network, before, after)
		}
	}
	// A second process tree on the same path fails the same way.
	p := proctest.Start(t, "server", "TFTEST_NETWORK=unix", "TFTEST_PATH="+path)
	if line := p.Expect("LISTENERR "); proctest.Fields(line)["inuse"] != "true" {
		t.Errorf("second server: %s", line)
	}
	wantSameFile(t, path, ino)
	wantServedBy(t, path, g.pid)
	g.stop(path)
}

// TestModeAndOwnerKeptAcrossGenerations: the first generation creates the
// file with its mode (and group); the next generations keep the same file
// and re-apply nothing, even when configured differently.
func TestModeAndOwnerKeptAcrossGenerations(t *testing.T) {
	t.Parallel()
	path := filepath.Join(proctest.ShortDir(t), "m.sock")
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 65534 // root may give the file any group
	}
	g := start(t, "unix", path, "TFTEST_FILEMODE=0620", "TFTEST_GID="+strconv.Itoa(gid),
		"TFTEST_NEXT_FILEMODE=0666", "TFTEST_NEXT_GID=0")
	ino, mode, st := fileID(t, path)
	if mode.Perm() != 0o620 || int(st.Gid) != gid {
		t.Fatalf("first generation: mode %v gid %d, want %v gid %d", mode.Perm(), st.Gid, fs.FileMode(0o620), gid)
	}
	for i := 0; i < 3; i++ {
		g.upgrade()
		gotIno, gotMode, gotSt := fileID(t, path)
		if gotIno != ino || gotMode != mode || gotSt.Gid != st.Gid || gotSt.Uid != st.Uid {
			t.Fatalf("after upgrade %d: inode %d mode %v uid %d gid %d; was inode %d mode %v uid %d gid %d",
				i+1, gotIno, gotMode, gotSt.Uid, gotSt.Gid, ino, mode, st.Uid, st.Gid)
		}
		wantServedBy(t, path, g.pid)
	}
	g.stop(path)
}

// TestOwnerAsRoot: running as root, the file gets the configured owner.
func TestOwnerAsRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root; TestModeAndOwnerKeptAcrossGenerations covers the group")
	}
	path := filepath.Join(proctest.ShortDir(t), "o.sock")
	upg := tablefliptest.New(nil)
	lc := unixtransport.ListenConfig{Mode: 0o600, UID: 65534, GID: 65534}
	ln, err := lc.Listen(context.Background(), upg, "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	_, mode, st := fileID(t, path)
	if st.Uid != 65534 || st.Gid != 65534 || mode.Perm() != 0o600 {
		t.Errorf("socket file uid %d gid %d mode %v, want 65534 65534 -rw-------", st.Uid, st.Gid, mode.Perm())
	}
	ln.Close()
	upg.Stop()
	mustBeGone(t, path)
}

// TestChildFailingBeforeReadyKeepsPath: a new generation that claims the
// socket and then fails must not remove the path its parent still serves.
func TestChildFailingBeforeReadyKeepsPath(t *testing.T) {
	t.Parallel()
	path := filepath.Join(proctest.ShortDir(t), "f.sock")
	g := start(t, "unix", path, "TFTEST_NEXT_FAIL_AFTER_LISTEN=1")
	ino, _, _ := fileID(t, path)
	syscall.Kill(g.pid, syscall.SIGHUP)
	g.p.Expect("FAILING ")
	if line := g.p.Expect("UPGRADEERR "); !strings.Contains(line, "told to fail after listen") {
		t.Errorf("upgrade error: %s", line)
	}
	wantSameFile(t, path, ino)
	wantServedBy(t, path, g.pid)
	g.stop(path)
}

// TestAbstractSocket: an abstract name survives upgrades; there is no file.
func TestAbstractSocket(t *testing.T) {
	t.Parallel()
	name := fmt.Sprintf("@tableflip-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	g := start(t, "unix", name, "TFTEST_BYNAME=1")
	for i := 0; i < 3; i++ {
		wantServedBy(t, name, g.pid)
		g.upgrade()
	}
	wantServedBy(t, name, g.pid)
	g.stop(name)
}

// TestSeqpacket: message boundaries hold and every exchange is answered
// through upgrades, by a client that reconnects for each exchange.
func TestSeqpacket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(proctest.ShortDir(t), "p.sock")
	g := start(t, "unixpacket", path)
	exchange := func(msgs ...string) {
		t.Helper()
		c, err := net.Dial("unixpacket", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(proctest.Timeout))
		for _, m := range msgs {
			if _, err := c.Write([]byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 1024)
		for _, m := range msgs {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(buf[:n]), fmt.Sprintf("pid=%d %s", g.pid, m); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
	for i := 0; i < 3; i++ {
		exchange("one", "two two", "three three three")
		g.upgrade()
	}
	exchange("after")
	g.stop(path)
}

// TestUnixgramThroughUpgrades: datagram clients with no retry get every
// request answered through upgrades.
func TestUnixgramThroughUpgrades(t *testing.T) {
	t.Parallel()
	dir := proctest.ShortDir(t)
	path := filepath.Join(dir, "g.sock")
	g := start(t, "unixgram", path)
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		sent     atomic.Int64
		answered atomic.Int64
		errs     = make(chan error, 16)
		pids     sync.Map
	)
	for i := 0; i < 4; i++ {
		cpath := filepath.Join(dir, fmt.Sprintf("c%d.sock", i))
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: cpath, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		srvAddr := &net.UnixAddr{Name: path, Net: "unixgram"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			buf := make([]byte, 1024)
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				req := fmt.Sprintf("req-%d-%d", i, seq)
				sent.Add(1)
				if _, err := c.WriteToUnix([]byte(req), srvAddr); err != nil {
					errs <- fmt.Errorf("%s: send: %w", req, err)
					return
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, _, err := c.ReadFromUnix(buf)
				if err != nil {
					errs <- fmt.Errorf("%s: no answer: %w", req, err)
					return
				}
				pid, rest, _ := strings.Cut(string(buf[:n]), " ")
				if rest != req {
					errs <- fmt.Errorf("%s: answer %q", req, buf[:n])
					return
				}
				pids.Store(pid, true)
				answered.Add(1)
			}
		}()
	}
	for i := 0; i < 5; i++ {
		g.upgrade()
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d datagrams sent, %d answered", sent.Load(), answered.Load())
	if sent.Load() != answered.Load() || sent.Load() == 0 {
		t.Errorf("%d sent, %d answered", sent.Load(), answered.Load())
	}
	g.stop(path)
}

// TestInheritedWrongKind: a parent passes a TCP listener, a datagram unix
// socket, a unix listener bound to another path, or a file that is no
// socket, under a unix stream key; the child's Listen refuses it with
// ErrWrongKind and holds no extra fd afterwards.
func TestInheritedWrongKind(t *testing.T) {
	t.Parallel()
	for _, pass := range []string{"tcp", "unixgram", "otherpath", "file"} {
		t.Run(pass, func(t *testing.T) {
			path := filepath.Join(proctest.ShortDir(t), "w.sock")
			p := proctest.Start(t, "wrongkind", "TFTEST_PATH="+path, "TFTEST_NETWORK=unix", "TFTEST_PASS="+pass)
			p.ExpectRefused("inherited file is not the socket its key names")
		})
	}
}

func TestErrors(t *testing.T) {
	dir := proctest.ShortDir(t)
	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("x", 120))
	tests := []struct {
		name    string
		lc      unixtransport.ListenConfig
		network string
		path    string
		is      error
		msg     string
	}{
		{"path too long", unixtransport.ListenConfig{}, "unix", long, unixtransport.ErrPathTooLong, "at most 108 fit"},
		{"abstract name too long", unixtransport.ListenConfig{}, "unix", "@" + strings.Repeat("a", 108), unixtransport.ErrPathTooLong, "too long"},
		{"missing directory", unixtransport.ListenConfig{}, "unix", filepath.Join(dir, "nodir", "s.sock"), fs.ErrNotExist, "does not exist"},
		{"missing directory, datagram", unixtransport.ListenConfig{}, "unixgram", filepath.Join(dir, "nodir", "s.sock"), fs.ErrNotExist, "does not exist"},
		{"path under a file", unixtransport.ListenConfig{}, "unix", filepath.Join(file, "s.sock"), syscall.ENOTDIR, "not a directory"},
		{"regular file at the path", unixtransport.ListenConfig{}, "unix", file, unixtransport.ErrNotSocket, "(it is a regular file); refusing to replace it"},
		{"directory at the path", unixtransport.ListenConfig{}, "unixpacket", dir, unixtransport.ErrNotSocket, "(it is a directory)"},
		{"empty path", unixtransport.ListenConfig{}, "unix", "", nil, "empty path"},
		{"unknown network", unixtransport.ListenConfig{}, "tcp", filepath.Join(dir, "x.sock"), nil, `unknown network "tcp"`},
		{"mode on an abstract name", unixtransport.ListenConfig{Mode: 0o600}, "unix", "@tableflip-test-mode", nil, "no file to give a mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upg := tablefliptest.New(nil)
			defer upg.Stop()
			proctest.ExpectError(t, func() error {
				c, err := listenAny(context.Background(), tt.lc, upg, tt.network, tt.path)
				if err == nil {
					c.Close()
				}
				return err
			}, tt.is, tt.msg, "unixtransport: ")
		})
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file was touched: %q %v", b, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("the directory was touched: %v", err)
	}
}

// TestPermissionDenied: a directory the process may not write to. As root
// (which may write anywhere) the test binary is re-executed as nobody.
func TestPermissionDenied(t *testing.T) {
	dir := proctest.ShortDir(t)
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0o555); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(locked, "s.sock")
	if os.Geteuid() != 0 {
		upg := tablefliptest.New(nil)
		defer upg.Stop()
		before := proctest.OpenFds()
		_, err := unixtransport.Listen(context.Background(), upg, "unix", path)
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "no permission") {
			t.Fatalf("error %v, want a permission error", err)
		}
		if after := proctest.OpenFds(); after != before {
			t.Errorf("%d fds before, %d after", before, after)
		}
		return
	}
	// Root: run a copy of the test binary as nobody, from a directory
	// nobody may read (the go tool's build directory is private).
	for _, d := range []string{dir} {
		os.Chmod(d, 0o755)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyExe := filepath.Join(dir, "unix.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyExe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(copyExe, "-test.run=^$")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	p := proctest.StartCommand(t, cmd, "TFTEST_ROLE=listen", "TFTEST_NETWORK=unix", "TFTEST_PATH="+path)
	line := p.Expect("LISTEN ")
	t.Log(line)
	f := proctest.Fields(line)
	if f["ok"] != "false" || f["perm"] != "true" || !strings.Contains(line, "no permission") {
		t.Errorf("as nobody: %s", line)
	}
	if f["fds_before"] != f["fds_after"] {
		t.Errorf("fds leaked: %s", line)
	}
	p.Wait()
}

// TestNameBased opens every scheme through the registry.
func TestNameBased(t *testing.T) {
	t.Parallel()
	dir := proctest.ShortDir(t)
	ctx := context.Background()
	upg := tablefliptest.New(nil)
	ln, err := tableflip.Listen(ctx, upg, "unix://"+filepath.Join(dir, "a.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pln, err := tableflip.Listen(ctx, upg, "unixpacket://"+filepath.Join(dir, "b.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer pln.Close()
	pc, err := tableflip.ListenPacket(ctx, upg, "unixgram://"+filepath.Join(dir, "c.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	abs := fmt.Sprintf("@tableflip-test-%d", os.Getpid())
	aln, err := tableflip.Listen(ctx, upg, "unix://"+abs)
	if err != nil {
		t.Fatal(err)
	}
	defer aln.Close()
	if aln.Addr().String() != abs {
		t.Errorf("abstract listener bound to %q", aln.Addr())
	}
	if _, err := tableflip.ListenPacket(ctx, upg, "unix://"+filepath.Join(dir, "d.sock")); err == nil {
		t.Error("a unix stream listener opened as a packet conn")
	}
	if _, err := tableflip.Listen(ctx, upg, "unixx://"+filepath.Join(dir, "e.sock")); !errors.Is(err, tableflip.ErrUnknownTransport) {
		t.Errorf("unknown scheme: %v", err)
	}
	upg.Ready()
	upg.Stop()
	for _, name := range []string{"a.sock", "b.sock", "c.sock", "d.sock"} {
		mustBeGone(t, filepath.Join(dir, name))
	}
}

// TestStaleAndLiveEveryType: for each socket type, a file left by a socket
// that was closed without removing it is replaced; a live socket of any
// type is left alone.
func TestStaleAndLiveEveryType(t *testing.T) {
	ctx := context.Background()
	for _, network := range []string{"unix", "unixpacket", "unixgram"} {
		t.Run(network, func(t *testing.T) {
			dir := proctest.ShortDir(t)
			path := filepath.Join(dir, "s.sock")
			open := func(upg *tablefliptest.Upgrader) (io.Closer, error) {
				return listenAny(ctx, unixtransport.ListenConfig{}, upg, network, path)
			}
			// A live socket of the same type, then of another type.
			liveNets := []string{network, "unixgram", "unix"}
			for i, liveNet := range liveNets {
				var live io.Closer
				var err error
				if liveNet == "unixgram" {
					live, err = net.ListenUnixgram(liveNet, &net.UnixAddr{Name: path, Net: liveNet})
				} else {
					live, err = net.ListenUnix(liveNet, &net.UnixAddr{Name: path, Net: liveNet})
				}
				if err != nil {
					t.Fatal(err)
				}
				ino, _, _ := fileID(t, path)
				upg := tablefliptest.New(nil)
				before := proctest.OpenFds()
				c, err := open(upg)
				if after := proctest.OpenFds(); after != before && err != nil {
					t.Errorf("live %s: %d fds before, %d after", liveNet, before, after)
				}
				upg.Stop()
				if err == nil {
					c.Close()
					t.Fatalf("live %s socket at the path: Listen succeeded", liveNet)
				}
				if !errors.Is(err, unixtransport.ErrAddressInUse) {
					t.Errorf("live %s: %v, want ErrAddressInUse", liveNet, err)
				}
				if got, _, _ := fileID(t, path); got != ino {
					t.Errorf("live %s: its file was replaced", liveNet)
				}
				if ul, ok := live.(*net.UnixListener); ok {
					ul.SetUnlinkOnClose(false)
				}
				live.Close() // now the file is stale
				if i < len(liveNets)-1 {
					os.Remove(path) // room for the next live one
				}
			}
			// The last live socket, a stream one, left a stale file.
			if _, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("the file is not stale: %v", err)
			}
			if err := os.Link(path, path+".stale"); err != nil {
				t.Fatal(err)
			}
			staleIno, _, _ := fileID(t, path)
			upg := tablefliptest.New(nil)
			c, err := open(upg)
			if err != nil {
				t.Fatalf("stale file: %v", err)
			}
			if ino, _, _ := fileID(t, path); ino == staleIno {
				t.Error("the stale file was not replaced")
			}
			c.Close()
			upg.Ready()
			upg.Stop()
			mustBeGone(t, path)
		})
	}
}

// TestControl: the caller's Control runs on the new socket before bind; its
// error is returned and leaves nothing behind.
func TestControl(t *testing.T) {
	dir := proctest.ShortDir(t)
	path := filepath.Join(dir, "c.sock")
	var gotNetwork, gotAddr string
	var bound bool
	lc := unixtransport.ListenConfig{Config: net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		gotNetwork, gotAddr = network, address
		_, err := os.Lstat(path)
		bound = err == nil
		var serr error
		c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
		})
		return serr
	}}}
	upg := tablefliptest.New(nil)
	ln, err := lc.Listen(context.Background(), upg, "unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	if gotNetwork != "unixpacket" || gotAddr != path || bound {
		t.Errorf("Control(%q, %q) ran with the file bound: %v", gotNetwork, gotAddr, bound)
	}
	rc, _ := ln.SyscallConn()
	var v int
	rc.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED) })
	if v != 1 {
		t.Errorf("SO_PASSCRED = %d, want the 1 Control set", v)
	}
	ln.Close()
	upg.Stop()

	boom := errors.New("boom")
	lc.Config.Control = func(string, string, syscall.RawConn) error { return boom }
	upg = tablefliptest.New(nil)
	defer upg.Stop()
	before := proctest.OpenFds()
	if _, err := lc.Listen(context.Background(), upg, "unix", path); !errors.Is(err, boom) {
		t.Errorf("Listen with a failing Control: %v", err)
	}
	if after := proctest.OpenFds(); after != before {
		t.Errorf("%d fds before, %d after", before, after)
	}
	mustBeGone(t, path)
}

// TestPathDroppedByConfigIsRemoved: when the next generation's
// configuration no longer names a socket path, the inherited socket nobody
// claims is closed at Ready and its file removed; the new path is served.
func TestPathDroppedByConfigIsRemoved(t *testing.T) {
	t.Parallel()
	dir := proctest.ShortDir(t)
	oldPath, newPath := filepath.Join(dir, "old.sock"), filepath.Join(dir, "new.sock")
	g := start(t, "unix", oldPath, "TFTEST_NEXT_PATH="+newPath)
	g.upgrade()
	mustBeGone(t, oldPath)
	wantServedBy(t, newPath, g.pid)
	g.stop(newPath)
}
