package tableflip_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	_ "github.com/tableflip-go/tableflip/transport/tcp"
	_ "github.com/tableflip-go/tableflip/transport/unix"
)

// notifySocket plays the service manager's end of sd_notify: a unixgram
// socket with SO_PASSCRED, so that every datagram carries the pid of the
// process that sent it.
type notifySocket struct {
	t    *testing.T
	path string
	c    *net.UnixConn
}

type notifyMsg struct {
	pid    int
	fields []string // in order, as sent
	raw    string
}

func (m notifyMsg) get(key string) (string, bool) {
	for _, f := range m.fields {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// shape is the message with its variable values (STATUS, MONOTONIC_USEC)
// blanked out: what the sequence assertions compare.
func (m notifyMsg) shape() string {
	var b strings.Builder
	fmt.Fprintf(&b, "from=%d", m.pid)
	for _, f := range m.fields {
		k, _, _ := strings.Cut(f, "=")
		switch k {
		case "STATUS", "MONOTONIC_USEC":
			f = k + "=*"
		}
		b.WriteString(" " + f)
	}
	return b.String()
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	if serr != nil {
		t.Fatal(serr)
	}
	return &notifySocket{t: t, path: path, c: c}
}

func (n *notifySocket) read(deadline time.Time) (notifyMsg, error) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	n.c.SetReadDeadline(deadline)
	nr, noob, _, _, err := n.c.ReadMsgUnix(buf, oob)
	if err != nil {
		return notifyMsg{}, err
	}
	m := notifyMsg{raw: string(buf[:nr]), pid: -1}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:noob])
	if err == nil && len(cmsgs) == 1 {
		if cred, err := unix.ParseUnixCredentials(&cmsgs[0]); err == nil {
			m.pid = int(cred.Pid)
		}
	}
	for _, f := range strings.Split(m.raw, "\n") {
		if f != "" {
			m.fields = append(m.fields, f)
		}
	}
	return m, nil
}

// next waits for the next datagram.
func (n *notifySocket) next() notifyMsg {
	n.t.Helper()
	m, err := n.read(time.Now().Add(proctest.Timeout))
	if err != nil {
		n.t.Fatalf("no sd_notify message: %v", err)
	}
	if m.pid < 0 {
		n.t.Fatalf("sd_notify message %q without credentials", m.raw)
	}
	return m
}

// expect reads the next datagram and checks its shape.
func (n *notifySocket) expect(want string) notifyMsg {
	n.t.Helper()
	m := n.next()
	if got := m.shape(); got != want {
		n.t.Fatalf("sd_notify message\n got %s\nwant %s\n(raw %q)", got, want, m.raw)
	}
	if st, ok := m.get("STATUS"); ok && (st == "" || !strings.Contains(st, "generation")) {
		n.t.Errorf("STATUS=%q does not say which generation", st)
	}
	return m
}

// none checks that no datagram is queued. Call it when every process that
// could send one has exited: anything sent is already in the queue.
func (n *notifySocket) none() {
	n.t.Helper()
	m, err := n.read(time.Now())
	if err == nil {
		n.t.Fatalf("unexpected sd_notify message from pid %d: %q", m.pid, m.raw)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		n.t.Fatal(err)
	}
}

func monotonicUsec(t *testing.T) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano() / 1000)
}

// expectReloading checks a RELOADING=1 message from pid whose
// MONOTONIC_USEC was taken between before and now.
func (n *notifySocket) expectReloading(pid int, before uint64) {
	n.t.Helper()
	m := n.expect(fmt.Sprintf("from=%d RELOADING=1 MONOTONIC_USEC=* STATUS=*", pid))
	v, _ := m.get("MONOTONIC_USEC")
	usec, err := strconv.ParseUint(v, 10, 64)
	if after := monotonicUsec(n.t); err != nil || usec < before || usec > after {
		n.t.Fatalf("MONOTONIC_USEC=%s, want a CLOCK_MONOTONIC time in [%d, %d]", v, before, after)
	}
}

// startSystemdRole runs the "systemd" role (systemdMain) on a fresh TCP
// listener and returns the pid of its first generation once it is ready.
func startSystemdRole(t *testing.T, env ...string) (*proctest.Proc, int) {
	t.Helper()
	p := proctest.Start(t, "systemd", append([]string{"TFTEST_OPEN=tcp://127.0.0.1:0"}, env...)...)
	pid, _ := strconv.Atoi(field(p.Expect("READY "), "pid"))
	return p, pid
}

// upgradeRole upgrades the generation pid with SIGHUP and returns the pid of
// the next one, once the old one has exited.
func upgradeRole(t *testing.T, p *proctest.Proc, pid int) int {
	t.Helper()
	syscall.Kill(pid, syscall.SIGHUP)
	child, _ := strconv.Atoi(field(p.Expect("READY "), "pid"))
	p.Expect(fmt.Sprintf("EXIT pid=%d", pid))
	return child
}

// TestSystemdNotifySequence upgrades a server three times (and fails once)
// under a NOTIFY_SOCKET and checks every datagram, and who sent it: only the
// main process ever speaks, and it hands the role over with MAINPID=.
func TestSystemdNotifySequence(t *testing.T) {
	t.Parallel()
	ns := listenNotify(t)
	p, pid := startSystemdRole(t, "NOTIFY_SOCKET="+ns.path)
	pids := []int{pid}
	ns.expect(fmt.Sprintf("from=%d READY=1 STATUS=*", pid))

	for i := 0; i < 3; i++ {
		if i == 1 {
			// A failed upgrade: the child says why and exits. The main
			// process stays the main process and ends the reload.
			before := monotonicUsec(t)
			syscall.Kill(pid, syscall.SIGUSR1)
			if line := p.Expect(fmt.Sprintf("UPGRADED pid=%d ", pid)); !strings.Contains(line, "port 99999") {
				t.Fatalf("upgrade to a failing child: %s", line)
			}
			ns.expectReloading(pid, before)
			m := ns.expect(fmt.Sprintf("from=%d READY=1 STATUS=*", pid))
			if st, _ := m.get("STATUS"); !strings.Contains(st, "failed") || !strings.Contains(st, "port 99999") {
				t.Errorf("STATUS after a failed upgrade does not say why: %q", st)
			}
		}
		old := pid
		before := monotonicUsec(t)
		pid = upgradeRole(t, p, old)
		pids = append(pids, pid)
		ns.expectReloading(old, before)
		m := ns.expect(fmt.Sprintf("from=%d MAINPID=%d READY=1 STATUS=*", old, pid))
		if st, _ := m.get("STATUS"); !strings.Contains(st, fmt.Sprintf("generation %d (pid %d) ready", i+2, pid)) {
			t.Errorf("STATUS after upgrade %d: %q", i+1, st)
		}
	}
	syscall.Kill(pid, syscall.SIGTERM)
	p.Expect(fmt.Sprintf("EXIT pid=%d", pid))
	ns.expect(fmt.Sprintf("from=%d STOPPING=1 STATUS=*", pid))
	if code := p.Wait(); code != 0 {
		t.Errorf("first generation %d exited %d", pids[0], code)
	}
	for _, pid := range pids {
		proctest.WaitGone(t, pid)
	}
	ns.none()
}

// TestSystemdNotifyOff: Options.DisableNotify turns sd_notify off even with
// a NOTIFY_SOCKET.
func TestSystemdNotifyOff(t *testing.T) {
	t.Parallel()
	ns := listenNotify(t)
	p, pid := startSystemdRole(t, "NOTIFY_SOCKET="+ns.path, "TFTEST_NO_NOTIFY=1")
	pid2 := upgradeRole(t, p, pid)
	syscall.Kill(pid2, syscall.SIGTERM)
	p.Expect(fmt.Sprintf("EXIT pid=%d", pid2))
	proctest.WaitGone(t, pid)
	proctest.WaitGone(t, pid2)
	ns.none()
}

// systemdMain is a generation of a service as systemd would run it: it
// opens every URI of TFTEST_OPEN with tableflip.Open (socket-activated or
// not) and reports which socket it got, answers "pid=N uri=U" on each
// listener, upgrades on SIGHUP (SIGUSR1: to a child that fails) and stops
// on SIGTERM. Its signal handlers are in place before it is ready. Its log
// goes to stdout, one line per entry, starting with the level.
func systemdMain() int {
	pid := os.Getpid()
	if os.Getenv("TFTEST_FAIL") != "" {
		upg, err := tableflip.New(tableflip.Options{})
		if err != nil {
			fmt.Printf("FATAL pid=%d new: %v\n", pid, err)
			return 1
		}
		fmt.Printf("STARTED pid=%d gen=%d failing\n", pid, upg.Generation())
		upg.Fail(errors.New("config invalid: port 99999 out of range"))
		return 1
	}
	enc := zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
		LevelKey: "L", MessageKey: "M", EncodeLevel: zapcore.CapitalLevelEncoder,
	})
	log := zap.New(zapcore.NewCore(enc, zapcore.Lock(os.Stdout), zap.InfoLevel))
	var failNext atomic.Bool
	upg, err := tableflip.New(tableflip.Options{
		Logger:        log,
		KillGrace:     2 * time.Second,
		DisableNotify: os.Getenv("TFTEST_NO_NOTIFY") == "1",
		Next: func(ctx context.Context, def *exec.Cmd) error {
			if failNext.Load() {
				def.Env = append(def.Env, "TFTEST_FAIL=1")
			}
			return nil
		},
	})
	if err != nil {
		fmt.Printf("FATAL pid=%d new: %v\n", pid, err)
		return 1
	}
	defer upg.Stop()
	fmt.Printf("STARTED pid=%d gen=%d\n", pid, upg.Generation())
	env := func(k string) string {
		if v, ok := os.LookupEnv(k); ok {
			return strconv.Quote(v)
		}
		return "unset"
	}
	fmt.Printf("ENV pid=%d LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s\n",
		pid, env("LISTEN_PID"), env("LISTEN_FDS"), env("LISTEN_FDNAMES"))

	ctx := context.Background()
	var listeners []net.Listener
	for _, uri := range strings.Fields(os.Getenv("TFTEST_OPEN")) {
		c, err := tableflip.Open(ctx, upg, uri)
		if err != nil {
			fmt.Printf("OPENERR pid=%d uri=%s err=%q\n", pid, uri, err)
			continue
		}
		ln, ok := c.(net.Listener)
		if !ok {
			c.Close()
			fmt.Printf("FATAL pid=%d %s is a %T\n", pid, uri, c)
			return 1
		}
		ino, err := socketInode(ln.(syscall.Conn))
		if err != nil {
			fmt.Printf("FATAL pid=%d %s: %v\n", pid, uri, err)
			return 1
		}
		fmt.Printf("OPEN pid=%d gen=%d uri=%s addr=%s inode=%d\n", pid, upg.Generation(), uri, ln.Addr(), ino)
		listeners = append(listeners, ln)
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(conn, "pid=%d uri=%s\n", pid, uri)
				conn.Close()
			}
		}()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM)
	if err := upg.Ready(); err != nil {
		fmt.Printf("FATAL pid=%d ready: %v\n", pid, err)
		return 1
	}
	fmt.Printf("READY pid=%d gen=%d\n", pid, upg.Generation())
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP || sig == syscall.SIGUSR1 {
				failNext.Store(sig == syscall.SIGUSR1)
				go func() {
					// Printed only when this generation lives on: after a
					// success it may exit first.
					if child, err := upg.Upgrade(ctx); err != nil {
						fmt.Printf("UPGRADED pid=%d child=%d err=%v\n", pid, child, err)
					}
				}()
				continue
			}
			upg.Stop()
			break wait
		case <-upg.Exit():
			break wait
		}
	}
	for _, ln := range listeners {
		ln.Close()
	}
	upg.Stop()
	fmt.Printf("EXIT pid=%d\n", pid)
	return 0
}

func socketInode(c syscall.Conn) (uint64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		return 0, err
	}
	return st.Ino, serr
}

// fdInode is the inode of the socket pid holds at fd, from /proc.
func fdInode(t *testing.T, pid, fd int) uint64 {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := strings.CutPrefix(l, "socket:[")
	ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	if !ok || err != nil {
		t.Fatalf("fd %d of pid %d is %s, not a socket", fd, pid, l)
	}
	return ino
}

// holdsInode reports whether pid has the socket with inode open.
func holdsInode(t *testing.T, pid int, inode uint64) bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink(dir + "/" + e.Name()); l == fmt.Sprintf("socket:[%d]", inode) {
			return true
		}
	}
	return false
}

// freePorts returns n distinct TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func socketActivateBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatalf("systemd-socket-activate not found (Debian: apt-get install systemd): %v", err)
	}
	return p
}

// startSocketActivated runs the test binary in role under
// systemd-socket-activate with args (its -l, --fdname, -E options). It
// waits until every socket listens and returns the process (whose pid the
// program will have) and the inode of each socket, in LISTEN_FDS order.
func startSocketActivated(t *testing.T, role string, nsockets int, args ...string) (*proctest.Proc, []uint64) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"-c", `exec "$@" 2>&1`, "sh", socketActivateBinary(t)}, args...)
	argv = append(argv, "-E", "TFTEST_ROLE="+role, exe, "-test.run=^$")
	p := proctest.StartCommand(t, exec.Command("/bin/sh", argv...))
	for i := 0; i < nsockets; i++ {
		p.Expect("Listening on ")
	}
	var inodes []uint64
	for i := 0; i < nsockets; i++ {
		inodes = append(inodes, fdInode(t, p.Cmd.Process.Pid, 3+i))
	}
	return p, inodes
}

// dialLine connects and returns the line the server answers.
func dialLine(t *testing.T, network, address string) string {
	t.Helper()
	c, err := net.DialTimeout(network, address, proctest.Timeout)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, address, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(proctest.Timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s %s: %v", network, address, err)
	}
	return strings.TrimSpace(line)
}

// expectOpen takes the OPEN line of uri and checks it got the socket inode.
func expectOpen(t *testing.T, p *proctest.Proc, pid int, uri string, inode uint64) {
	t.Helper()
	line := p.Expect(fmt.Sprintf("OPEN pid=%d ", pid))
	if field(line, "uri") != uri {
		t.Fatalf("OPEN lines out of order: %s, want uri=%s", line, uri)
	}
	if got := field(line, "inode"); got != strconv.FormatUint(inode, 10) {
		t.Fatalf("%s: got socket inode %s, want the activated one %d", uri, got, inode)
	}
}

// TestSocketActivationTwoSockets: a TCP socket on [::]:P (asked for as
// ":P") and a unix socket path, opened in the other order than systemd
// passed them, are the activated ones, in the first generation and, after
// an upgrade, in the second.
func TestSocketActivationTwoSockets(t *testing.T) {
	t.Parallel()
	port := freePorts(t, 1)[0]
	path := filepath.Join(t.TempDir(), "app.sock")
	tcpURI, unixURI := fmt.Sprintf("tcp://:%d", port), "unix://"+path
	p, inodes := startSocketActivated(t, "systemd", 2,
		"-l", strconv.Itoa(port), "-l", path, "-E", "TFTEST_OPEN="+unixURI+" "+tcpURI)
	pid := p.Cmd.Process.Pid

	// The first connection starts the program.
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if got, want := dialLine(t, "tcp", addr), fmt.Sprintf("pid=%d uri=%s", pid, tcpURI); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if line := p.Expect("ENV "); !strings.Contains(line, "LISTEN_PID=unset LISTEN_FDS=unset LISTEN_FDNAMES=unset") {
		t.Errorf("socket activation variables left in the environment: %s", line)
	}
	expectOpen(t, p, pid, unixURI, inodes[1])
	expectOpen(t, p, pid, tcpURI, inodes[0])
	p.Expect(fmt.Sprintf("READY pid=%d gen=1", pid))
	if got, want := dialLine(t, "unix", path), fmt.Sprintf("pid=%d uri=%s", pid, unixURI); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}

	// The next generation inherits them like any other file.
	syscall.Kill(pid, syscall.SIGHUP)
	ready := p.Expect("READY ")
	child, _ := strconv.Atoi(field(ready, "pid"))
	if child == pid || field(ready, "gen") != "2" {
		t.Fatalf("after SIGHUP: %s", ready)
	}
	expectOpen(t, p, child, unixURI, inodes[1])
	expectOpen(t, p, child, tcpURI, inodes[0])
	p.Expect(fmt.Sprintf("EXIT pid=%d", pid))
	if got, want := dialLine(t, "tcp", addr), fmt.Sprintf("pid=%d uri=%s", child, tcpURI); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, want := dialLine(t, "unix", path), fmt.Sprintf("pid=%d uri=%s", child, unixURI); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	syscall.Kill(child, syscall.SIGTERM)
	p.Expect(fmt.Sprintf("EXIT pid=%d", child))
}

// TestSocketActivationNames: files named with --fdname (FileDescriptorName=
// in a .socket unit) are found by name, whatever their address; the one
// nobody asks for is logged and closed at Ready.
func TestSocketActivationNames(t *testing.T) {
	t.Parallel()
	ports := freePorts(t, 3)
	web, admin, spare := ports[0], ports[1], ports[2]
	p, inodes := startSocketActivated(t, "systemd", 3,
		"-l", fmt.Sprintf("127.0.0.1:%d", web), "-l", fmt.Sprintf("127.0.0.1:%d", admin),
		"-l", fmt.Sprintf("127.0.0.1:%d", spare), "--fdname=web:admin:spare",
		"-E", "TFTEST_OPEN=tcp://admin tcp://web")
	pid := p.Cmd.Process.Pid

	if got, want := dialLine(t, "tcp", fmt.Sprintf("127.0.0.1:%d", admin)), fmt.Sprintf("pid=%d uri=tcp://admin", pid); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	expectOpen(t, p, pid, "tcp://admin", inodes[1])
	expectOpen(t, p, pid, "tcp://web", inodes[0])
	warn := p.Expect("WARN\tclosing socket-activated file nobody claimed")
	if !strings.Contains(warn, `"fdname": "spare"`) || !strings.Contains(warn, fmt.Sprintf("127.0.0.1:%d", spare)) {
		t.Errorf("warning does not say which file: %s", warn)
	}
	p.Expect(fmt.Sprintf("READY pid=%d gen=1", pid))
	if holdsInode(t, pid, inodes[2]) {
		t.Errorf("pid %d still holds the unclaimed socket after Ready", pid)
	}
	// It was the last reference: the port no longer listens.
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", spare)); err == nil {
		c.Close()
		t.Error("the unclaimed socket still accepts connections")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial the unclaimed socket: %v, want connection refused", err)
	}
	if got, want := dialLine(t, "tcp", fmt.Sprintf("127.0.0.1:%d", web)), fmt.Sprintf("pid=%d uri=tcp://web", pid); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	p.Expect(fmt.Sprintf("EXIT pid=%d", pid))
	if code := p.Wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestSocketActivationListenPID: LISTEN_FDS is honoured only when
// LISTEN_PID is this process, as sd_listen_fds(3) says; the variables are
// removed either way.
func TestSocketActivationListenPID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		listenPID string // shell expression
		ours      bool
	}{
		{"ours", "$$", true},
		{"parent", "$PPID", false},
		{"init", "1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			f, err := ln.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			inode, err := socketInode(f)
			if err != nil {
				t.Fatal(err)
			}
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			// sh sets LISTEN_PID to its own pid ($$), which exec keeps.
			cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=`+tt.listenPID+` exec "$@"`, "sh", exe, "-test.run=^$")
			cmd.ExtraFiles = []*os.File{f} // fd 3
			p := proctest.StartCommand(t, cmd, "TFTEST_ROLE=systemd", "LISTEN_FDS=1", "LISTEN_FDNAMES=web",
				"TFTEST_OPEN=tcp://web")
			f.Close()
			pid := p.Cmd.Process.Pid
			if line := p.Expect("ENV "); !strings.Contains(line, "LISTEN_PID=unset LISTEN_FDS=unset LISTEN_FDNAMES=unset") {
				t.Errorf("socket activation variables left in the environment: %s", line)
			}
			if tt.ours {
				expectOpen(t, p, pid, "tcp://web", inode)
				// The test holds the socket too but never accepts.
				if got, want := dialLine(t, "tcp", ln.Addr().String()), fmt.Sprintf("pid=%d uri=tcp://web", pid); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			} else {
				p.Expect("INFO\tignoring socket activation for another process")
				line := p.Expect(fmt.Sprintf("OPENERR pid=%d uri=tcp://web", pid))
				if !strings.Contains(line, "missing port") {
					t.Errorf("tcp://web without activation: %s", line)
				}
			}
			p.Expect(fmt.Sprintf("READY pid=%d", pid))
			syscall.Kill(pid, syscall.SIGTERM)
			p.Expect(fmt.Sprintf("EXIT pid=%d", pid))
		})
	}
}
