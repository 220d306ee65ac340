package tableflip_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
)

// A child that breaks the protocol is refused; the parent keeps serving.
func TestLyingChild(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, tc := range []struct{ fake, parentSays, childGot string }{
		{"v99", "version mismatch: this side speaks 1, the other side speaks 99", "version mismatch"},
		{"garbage", "exceeds the limit", "exceeds the limit"},
		{"ready-first", "want hello, got frame 'R'", "want hello"},
	} {
		answer, _ := s.upgrade("fake-" + tc.fake)
		if !strings.HasPrefix(answer, "childerr ") || !strings.Contains(answer, tc.parentSays) {
			t.Fatalf("%s: Upgrade answered %q, want a ChildError containing %q", tc.fake, answer, tc.parentSays)
		}
		if tc.childGot != "" {
			line := s.p.Expect("FAKECHILD ")
			if !strings.Contains(line, "typ=X") || !strings.Contains(line, tc.childGot) {
				t.Fatalf("%s: the child was told %s", tc.fake, line)
			}
		}
		if got := s.get("/"); !strings.HasPrefix(got, fmt.Sprintf("pid=%d ", s.pid)) {
			t.Fatalf("%s: the parent stopped serving: %q", tc.fake, got)
		}
	}
	s.mustUpgrade()
}

// The parent sends its hello, the files, the state and the end frame
// without waiting for the child's hello, so that a busy parent's wake-up is
// not on the child's path to its files; the child's hello is still read
// and checked (TestLyingChild).
func TestParentSendsBeforeChildHello(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_TIMEOUT=30s", "TFTEST_STATE_SIZE=100")
	answer, _ := s.upgrade("fake-hello-last")
	if !strings.HasPrefix(answer, "childerr ") || !strings.Contains(answer, `reason="got HFSE before my hello"`) {
		t.Fatalf("Upgrade answered %q, want the child's reason: it got hello, files, state and end before its hello\n%s", answer, s.p.Output())
	}
	if got := s.get("/"); !strings.HasPrefix(got, fmt.Sprintf("pid=%d ", s.pid)) {
		t.Fatalf("the parent stopped serving: %q", got)
	}
	s.mustUpgrade()
}

// Files a child attaches to a frame that carries none are closed: a child
// cannot make the old generation leak descriptors.
func TestChildSendsUnaskedFiles(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	before := s.get("/fds")
	for i := 0; i < 4; i++ {
		answer, _ := s.upgrade("fake-files")
		if !strings.HasPrefix(answer, "childerr ") || !strings.Contains(answer, "want hello, got frame 'F'") {
			t.Fatalf("Upgrade answered %q", answer)
		}
		if line := s.p.Expect("FAKECHILD "); !strings.Contains(line, "typ=X") {
			t.Fatalf("the child was told %s", line)
		}
	}
	// The connection of the previous request may still be closing on the
	// server's side: ask again (each answer is an event) until it has.
	after := s.get("/fds")
	for i := 0; i < 20 && after != before; i++ {
		after = s.get("/fds")
	}
	if after != before {
		t.Fatalf("open fds: %s before, %s after 4 children sent 250 files each:\n%s", before, after, s.get("/fds?list=1"))
	}
}

// A parent that gives up on its child, here because it is stopped, closes
// the handoff at once: a child that waits for its answer learns it and can
// exit by itself, rather than hang until SIGKILL.
func TestChildLearnsParentGaveUp(t *testing.T) {
	t.Parallel()
	s := startServer(t, "TFTEST_TIMEOUT=60s")
	answer := s.upgradeInBackground("fake-wait")
	s.p.Expect("FAKEWAIT ")
	s.p.Cmd.Process.Signal(syscall.SIGTERM)
	// The fake child ignores SIGTERM: only the closed socket tells it.
	if line := s.p.Expect("FAKECHILD "); !strings.Contains(line, "err=EOF") {
		t.Fatalf("the child saw %s", line)
	}
	if got := <-answer; !strings.HasPrefix(got, "childerr ") || !strings.Contains(got, "stopped") {
		t.Fatalf("Upgrade during Stop answered %q", got)
	}
	s.p.Expect(fmt.Sprintf("EXIT pid=%d", s.pid))
}

// unclaimedTransport reports the files that a generation drops unclaimed.
type unclaimedTransport struct{}

func (unclaimedTransport) Name() string { return "tftest-unclaimed" }
func (unclaimedTransport) Open(context.Context, tableflip.Fds, string) (io.Closer, error) {
	return nil, errors.New("tftest-unclaimed: not for opening")
}
func (unclaimedTransport) Unclaimed(key string, meta []byte) {
	fmt.Printf("UNCLAIMED pid=%d key=%s\n", os.Getpid(), key)
}

func init() { tableflip.MustRegister(unclaimedTransport{}) }

// Until its parent acknowledges its ready, a child leaves alone what the
// parent would still use if it gave up: the PID file is put back as it
// was, and an inherited file the child does not claim is not dropped (a
// unix socket's path would be unlinked).
func TestParentGivesUpAfterReady(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer []byte
	}{
		{"gives up", rawFrame('X', 0, []byte("tableflip: upgrade timed out"))},
		{"commits", rawFrame('A', 0, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "app.pid")
			if err := os.WriteFile(pidfile, []byte("4242\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			p, conn := hostileParent(t, "TFTEST_PIDFILE="+pidfile)
			child := p.Cmd.Process.Pid
			conn.Write(rawHello(1, os.Getpid(), 1))
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			files := rawFrame('F', 1, rawRecord("tftest-unclaimed", "k"))
			if err := unix.Sendmsg(int(conn.Fd()), files, unix.UnixRights(int(r.Fd())), nil, 0); err != nil {
				t.Fatal(err)
			}
			conn.Write(rawFrame('E', 0, []byte{0, 0, 0, 1}))
			if typ, payload, err := readRawFrame(conn); err != nil || typ != 'R' {
				t.Fatalf("child answered %c %q %v\n%s", typ, payload, err, p.Output())
			}
			if b, _ := os.ReadFile(pidfile); string(b) != strconv.Itoa(child)+"\n" {
				t.Fatalf("pid file %q before the ack, want the child's %d", b, child)
			}
			conn.Write(tc.answer)
			if tc.answer[4] == 'A' {
				p.Expect("READY ")
				if line := p.Expect("UNCLAIMED "); field(line, "key") != "k" {
					t.Fatalf("unclaimed: %s", line)
				}
				if b, _ := os.ReadFile(pidfile); string(b) != strconv.Itoa(child)+"\n" {
					t.Fatalf("pid file %q after the ack, want the child's %d", b, child)
				}
				return
			}
			if line := p.Expect("READYERR "); !strings.Contains(line, "gave up on us: tableflip: upgrade timed out") {
				t.Fatalf("Ready failed with %s", line)
			}
			if code := p.Wait(); code == 0 {
				t.Fatal("child exited 0")
			}
			if out := p.Output(); strings.Contains(out, "UNCLAIMED") {
				t.Fatalf("the child dropped an inherited file its parent may still use:\n%s", out)
			}
			if b, _ := os.ReadFile(pidfile); string(b) != "4242\n" {
				t.Fatalf("pid file %q, want the parent's 4242 back", b)
			}
		})
	}
}

// hostileParent starts a server generation whose parent is this test,
// speaking the protocol by hand through the returned socket.
func hostileParent(t *testing.T, env ...string) (*proctest.Proc, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := os.NewFile(uintptr(fds[0]), "parent")
	theirs := os.NewFile(uintptr(fds[1]), "child")
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.ExtraFiles = []*os.File{theirs}
	p := proctest.StartCommand(t, cmd, append([]string{"TFTEST_ROLE=server", "TABLEFLIP_HANDOFF=3"}, env...)...)
	theirs.Close()
	t.Cleanup(func() { ours.Close() })
	// The child speaks first: its hello, at protocol version 1.
	typ, payload, err := readRawFrame(ours)
	if err != nil || typ != 'H' || string(payload[:5]) != "TFLIP" || binary.BigEndian.Uint16(payload[5:7]) != 1 {
		t.Fatalf("child hello: %c %q %v", typ, payload, err)
	}
	return p, ours
}

func TestMalformedHandoffFromParent(t *testing.T) {
	t.Parallel()
	hello := rawHello(1, os.Getpid(), 1)
	for _, tc := range []struct {
		name  string
		send  []byte
		fds   int // files attached to the first send
		close bool
		want  string
	}{
		{"wrong version", rawHello(2, os.Getpid(), 1), 0, false, "version mismatch: this side speaks 1, the other side speaks 2"},
		{"no magic", rawFrame('H', 0, []byte("HELLO, WORLD!!!")), 0, false, "hello without the tableflip magic"},
		{"pid 0", rawHello(1, 0, 1), 0, false, "hello with pid 0"},
		{"truncated header", []byte{0, 0, 0}, 0, true, "truncated frame header"},
		{"truncated payload", rawFrame('H', 0, []byte("TFLIP"))[:10], 0, true, "truncated frame"},
		{"oversized frame", append(binary.BigEndian.AppendUint32(nil, 1<<30), 'H', 0, 0), 0, true, "exceeds the limit"},
		{"files missing", append(hello, rawFrame('F', 3, nil)...), 0, false, "declares 3 files, 0 arrived"},
		{"bad record", append(hello, rawFrame('F', 1, []byte{0, 9, 'x'})...), 1, false, "record 0: bad transport name"},
		{"unknown flags", append(hello, rawFrame('F', 1, []byte{0x80, 3, 't', 'c', 'p'})...), 1, false, "record 0: unknown flags 0x80"},
		{"files on a state frame", append(hello, rawFrame('S', 1, nil)...), 0, false, "may not carry files"},
		{"no end frame", hello, 0, true, "before its end frame"},
		{"bad end frame", append(hello, rawFrame('E', 0, []byte{1})...), 0, false, "end frame of 1 bytes"},
		{"end frame miscounts", append(hello, rawFrame('E', 0, []byte{0, 0, 0, 2})...), 0, false, "end frame counts 2 files, 0 arrived"},
		{"unexpected frame", append(hello, rawFrame('R', 0, nil)...), 0, false, "unexpected frame 'R' in the state stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, conn := hostileParent(t)
			if tc.fds > 0 {
				r, w, _ := os.Pipe()
				defer r.Close()
				defer w.Close()
				if err := unix.Sendmsg(int(conn.Fd()), tc.send, unix.UnixRights(int(r.Fd())), nil, 0); err != nil {
					t.Fatal(err)
				}
			} else {
				conn.Write(tc.send)
			}
			if tc.close {
				conn.Close()
			}
			// The error surfaces in New, or, for the state stream, in
			// the application's read of LoadState.
			line := p.Expect("ERR ")
			if !strings.Contains(line, tc.want) {
				t.Fatalf("child said %q, want %q", line, tc.want)
			}
			if !tc.close {
				// The child tells its parent why, too.
				typ, payload, err := readRawFrame(conn)
				if err != nil || typ != 'X' || !strings.Contains(string(payload), tc.want) {
					t.Fatalf("parent was told %c %q %v", typ, payload, err)
				}
			}
			if code := p.Wait(); code == 0 {
				t.Fatal("child exited 0")
			}
		})
	}
}

// A stray TABLEFLIP_HANDOFF gives a clear error and touches nothing.
func TestStrayHandoffVariable(t *testing.T) {
	t.Parallel()
	file, err := os.CreateTemp(t.TempDir(), "notasocket")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	udp, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	udpf := os.NewFile(uintptr(udp), "udp")
	defer udpf.Close()
	for _, tc := range []struct {
		value string
		fd3   *os.File
		want  string
	}{
		{"abc", nil, `TABLEFLIP_HANDOFF="abc" is not a file descriptor number`},
		{"3", nil, "fd 3 is not a socket"},
		{"3", file, "fd 3 is not a socket"},
		{"3", udpf, "fd 3 is not a stream socket"},
	} {
		exe, _ := os.Executable()
		cmd := exec.Command(exe, "-test.run=^$")
		if tc.fd3 != nil {
			cmd.ExtraFiles = []*os.File{tc.fd3}
		}
		p := proctest.StartCommand(t, cmd, "TFTEST_ROLE=server", "TABLEFLIP_HANDOFF="+tc.value)
		if line := p.Expect("ERR "); !strings.Contains(line, tc.want) {
			t.Fatalf("TABLEFLIP_HANDOFF=%s: %q, want %q", tc.value, line, tc.want)
		}
		p.Wait()
	}
}

// A child that runs out of file descriptors while receiving the handoff
// fails with an error that names the limit; the parent keeps serving.
func TestChildHitsEMFILE(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/prlimit"); err != nil {
		t.Fatalf("this test needs prlimit (Debian's util-linux): %v", err)
	}
	s := startServer(t, "TFTEST_LISTENERS=100")
	answer, _ := s.upgrade("emfile")
	if !strings.HasPrefix(answer, "childerr ") || !strings.Contains(answer, "open file limit") {
		t.Fatalf("answer %q, want a ChildError that names the open file limit", answer)
	}
	if got := s.get("/"); !strings.HasPrefix(got, fmt.Sprintf("pid=%d ", s.pid)) {
		t.Fatalf("the parent stopped serving: %q", got)
	}
	s.mustUpgrade()
}

// A parent that stalls mid-handoff does not hang its child: the child gives
// up after its own upgrade timeout.
func TestStalledParent(t *testing.T) {
	t.Parallel()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := os.NewFile(uintptr(fds[0]), "parent")
	theirs := os.NewFile(uintptr(fds[1]), "child")
	defer ours.Close()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.ExtraFiles = []*os.File{theirs}
	p := proctest.StartCommand(t, cmd, "TFTEST_ROLE=server", "TABLEFLIP_HANDOFF=3", "TFTEST_TIMEOUT=500ms")
	theirs.Close()
	if typ, _, err := readRawFrame(ours); err != nil || typ != 'H' {
		t.Fatalf("child hello: %c %v", typ, err)
	}
	ours.Write(rawHello(1, os.Getpid(), 1)) // and then nothing
	if line := p.Expect("ERR "); !strings.Contains(line, "i/o timeout") {
		t.Fatalf("child said %q", line)
	}
	if code := p.Wait(); code == 0 {
		t.Fatal("child exited 0")
	}
}
