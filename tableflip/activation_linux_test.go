package tableflip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

func listenT(t *testing.T, network, address string) syscall.Conn {
	t.Helper()
	var c io.Closer
	var err error
	switch network {
	case "udp", "udp4", "udp6", "unixgram":
		c, err = net.ListenPacket(network, address)
	default:
		c, err = net.Listen(network, address)
	}
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, address, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(syscall.Conn)
}

func portOf(c syscall.Conn) int {
	switch a := c.(type) {
	case net.Listener:
		return a.Addr().(*net.TCPAddr).Port
	case net.PacketConn:
		return a.LocalAddr().(*net.UDPAddr).Port
	}
	return 0
}

func TestMatchSocketAddress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	abstract := fmt.Sprintf("@tableflip-test-%d", os.Getpid())
	socks := map[string]syscall.Conn{
		"lo":     listenT(t, "tcp", "127.0.0.1:0"),
		"any6":   listenT(t, "tcp", ":0"), // [::], dual-stack
		"any4":   listenT(t, "tcp4", ":0"),
		"udp":    listenT(t, "udp", "127.0.0.1:0"),
		"unix":   listenT(t, "unix", filepath.Join(dir, "s.sock")),
		"abs":    listenT(t, "unix", abstract),
		"gram":   listenT(t, "unixgram", filepath.Join(dir, "g.sock")),
		"packet": listenT(t, "unixpacket", filepath.Join(dir, "p.sock")),
	}
	if a := socks["any6"].(net.Listener).Addr().(*net.TCPAddr); a.IP.To4() != nil {
		t.Fatalf("\":0\" bound %v, want [::]", a)
	}
	// A connected socket (what Accept=yes passes) is not a listener.
	conn, err := net.Dial("tcp", socks["lo"].(net.Listener).Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	socks["conn"] = conn.(syscall.Conn)

	lo, any6, any4, udp := portOf(socks["lo"]), portOf(socks["any6"]), portOf(socks["any4"]), portOf(socks["udp"])
	connPort := conn.LocalAddr().(*net.TCPAddr).Port
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sock, network, address string
		want                   bool
	}{
		{"lo", "tcp", fmt.Sprintf("127.0.0.1:%d", lo), true},
		{"lo", "tcp4", fmt.Sprintf("127.0.0.1:%d", lo), true},
		{"lo", "tcp6", fmt.Sprintf("127.0.0.1:%d", lo), false},
		{"lo", "tcp", fmt.Sprintf("localhost:%d", lo), true},
		{"lo", "tcp", fmt.Sprintf(":%d", lo), false},            // not an unspecified address
		{"lo", "tcp", fmt.Sprintf("127.0.0.2:%d", lo), false},   // other IP
		{"lo", "tcp", fmt.Sprintf("127.0.0.1:%d", lo+1), false}, // other port
		{"lo", "tcp", "127.0.0.1:0", false},
		{"lo", "tcp", "127.0.0.1", false},
		{"lo", "udp", fmt.Sprintf("127.0.0.1:%d", lo), false},
		{"lo", "unix", fmt.Sprintf("127.0.0.1:%d", lo), false},
		{"lo", "quic", fmt.Sprintf("127.0.0.1:%d", lo), false},

		{"any6", "tcp", fmt.Sprintf(":%d", any6), true},
		{"any6", "tcp6", fmt.Sprintf(":%d", any6), true},
		{"any6", "tcp4", fmt.Sprintf(":%d", any6), false},
		{"any6", "tcp", fmt.Sprintf("[::]:%d", any6), true},
		{"any6", "tcp", fmt.Sprintf("0.0.0.0:%d", any6), false},

		{"any4", "tcp", fmt.Sprintf(":%d", any4), true},
		{"any4", "tcp4", fmt.Sprintf(":%d", any4), true},
		{"any4", "tcp6", fmt.Sprintf(":%d", any4), false},
		{"any4", "tcp", fmt.Sprintf("0.0.0.0:%d", any4), true},
		{"any4", "tcp", fmt.Sprintf("[::]:%d", any4), false},

		{"udp", "udp", fmt.Sprintf("127.0.0.1:%d", udp), true},
		{"udp", "udp4", fmt.Sprintf("127.0.0.1:%d", udp), true},
		{"udp", "udp", fmt.Sprintf(":%d", udp), false},
		{"udp", "tcp", fmt.Sprintf("127.0.0.1:%d", udp), false},

		{"conn", "tcp", fmt.Sprintf("127.0.0.1:%d", connPort), false},

		{"unix", "unix", filepath.Join(dir, "s.sock"), true},
		{"unix", "unix", filepath.Join(dir, ".", "s.sock"), true},
		{"unix", "unix", rel, true},
		{"unix", "unix", filepath.Join(dir, "other.sock"), false},
		{"unix", "unixgram", filepath.Join(dir, "s.sock"), false},
		{"unix", "unixpacket", filepath.Join(dir, "s.sock"), false},
		{"unix", "unix", "", false},
		{"abs", "unix", abstract, true},
		{"abs", "unix", abstract + "x", false},
		{"abs", "unix", abstract[1:], false},
		{"gram", "unixgram", filepath.Join(dir, "g.sock"), true},
		{"gram", "unix", filepath.Join(dir, "g.sock"), false},
		{"packet", "unixpacket", filepath.Join(dir, "p.sock"), true},
		{"packet", "unix", filepath.Join(dir, "p.sock"), false},
	}
	for _, tt := range tests {
		if got := matchSocketAddress(tt.network, tt.address, socks[tt.sock]); got != tt.want {
			t.Errorf("matchSocketAddress(%q, %q, %s socket) = %v, want %v", tt.network, tt.address, tt.sock, got, tt.want)
		}
	}

	// Not a socket at all.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if matchSocketAddress("tcp", ":80", r) {
		t.Error("a pipe matched tcp :80")
	}
}

// fileOf duplicates c's descriptor into an *os.File the test owns, as if
// systemd had passed it.
func fileOf(t *testing.T, c syscall.Conn) *os.File {
	t.Helper()
	fd, err := dupConn(c, "activated")
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "activated")
}

func sameSocket(t *testing.T, a, b syscall.Conn) bool {
	t.Helper()
	ino := func(c syscall.Conn) uint64 {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) })
		if serr != nil {
			t.Fatal(serr)
		}
		return st.Ino
	}
	return ino(a) == ino(b)
}

// pluginTransport is a plugin's transport that accepts activated files by
// its own rule (here: a unixgram socket whose path ends in its key).
type pluginTransport struct{}

func (pluginTransport) Name() string { return "tftest-plugin" }
func (pluginTransport) Open(ctx context.Context, fds Fds, address string) (io.Closer, error) {
	return nil, errors.New("not used")
}
func (pluginTransport) MatchActivated(key string, f *os.File, name string) bool {
	return matchSocketAddress("unixgram", key, f) || strings.HasSuffix(name, "-"+key)
}

var _ activationMatcher = pluginTransport{}

func init() { MustRegister(pluginTransport{}) }

func TestActivationClaim(t *testing.T) {
	dir := t.TempDir()
	web := listenT(t, "tcp", "127.0.0.1:0")
	admin := listenT(t, "tcp", "127.0.0.1:0")
	spare := listenT(t, "tcp", "127.0.0.1:0")
	gram := listenT(t, "unixgram", filepath.Join(dir, "g.sock"))
	other := listenT(t, "udp", "127.0.0.1:0")
	core, logs := observer.New(zap.InfoLevel)
	a := newActivation(zap.New(core), []*os.File{
		fileOf(t, web), fileOf(t, admin), fileOf(t, spare), fileOf(t, gram), fileOf(t, other),
	}, []string{"web", "admin", "", "", "plugin-extra"})

	inherited, passing := map[string]*entry{}, map[string]*entry{}
	claim := func(transport, key string) syscall.Conn {
		t.Helper()
		if i, how := matchActivated(a.unclaimed(), transport, key); i >= 0 {
			a.take(i, how, inherited, passing, transport, key)
		}
		e, ok := inherited[entryName(transport, key)]
		if !ok {
			return nil
		}
		// As Inherit does: move it to the passing set.
		delete(inherited, entryName(transport, key))
		passing[entryName(transport, key)] = e
		f := os.NewFile(uintptr(e.fd), e.key) // closed with passing below
		t.Cleanup(func() { f.Close() })
		return f
	}

	// A name matches before any address, whatever the transport.
	webAddr := web.(net.Listener).Addr().String()
	if got := claim("tcp", "admin"); got == nil || !sameSocket(t, got, admin) {
		t.Fatalf("tcp admin: got %v, want the socket named admin", got)
	}
	if got := claim("tcp", "admin"); got != nil {
		t.Fatal("a name already passed was claimed twice")
	}
	if got := claim("unix", "web"); got == nil || !sameSocket(t, got, web) {
		t.Fatalf("unix web: got %v, want the socket named web", got)
	}
	// web is taken: its address no longer matches anything.
	if got := claim("tcp", webAddr); got != nil {
		t.Fatalf("tcp %s claimed a second file", webAddr)
	}
	// By address.
	spareAddr := spare.(net.Listener).Addr().String()
	if got := claim("udp", spareAddr); got != nil {
		t.Fatal("udp claimed a TCP listener")
	}
	// A plugin transport decides by itself.
	if got := claim("tftest-plugin", filepath.Join(dir, "g.sock")); got == nil || !sameSocket(t, got, gram) {
		t.Fatalf("plugin: got %v, want the unixgram socket", got)
	}
	if got := claim("tftest-plugin", "extra"); got == nil || !sameSocket(t, got, other) {
		t.Fatalf("plugin by its own name rule: got %v, want the udp socket", got)
	}
	if got := claim("tftest-plugin", spareAddr); got != nil {
		t.Fatal("plugin matcher was bypassed")
	}

	claimed := logs.FilterMessage("claimed socket-activated file").All()
	if len(claimed) != 4 {
		t.Errorf("%d claim log lines, want 4", len(claimed))
	}
	for _, e := range claimed {
		if addr := fmt.Sprint(e.ContextMap()["address"]); !strings.HasPrefix(addr, "listening stream ") && !strings.HasPrefix(addr, "datagram ") {
			t.Errorf("claim logged without the socket's address: %v", e.ContextMap())
		}
	}
	// The one left is closed at Ready, with a warning.
	left := a.files[2]
	a.closeUnclaimed()
	if _, err := left.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("unclaimed file still open: %v", err)
	}
	warn := logs.FilterMessage("closing socket-activated file nobody claimed").All()
	if len(warn) != 1 || !strings.Contains(fmt.Sprint(warn[0].ContextMap()["address"]), spareAddr) {
		t.Errorf("warnings: %+v, want one about %s", warn, spareAddr)
	}
	a.closeUnclaimed() // idempotent
	// The passing set's descriptors are closed by the files claim made.

	// A nil activation (no socket activation) does nothing.
	var none *activation
	if none.unclaimed() != nil || none.take(0, "name", inherited, passing, "tcp", spareAddr) {
		t.Fatal("nil activation has files")
	}
	none.closeUnclaimed()
	if len(inherited) != 0 {
		t.Fatal("nil activation claimed something")
	}
}

func TestNotifierMessages(t *testing.T) {
	var sent []string
	u := &Upgrader{generation: 3, log: zap.NewNop(), parentPid: 1}
	n := &notifier{u: u, send: func(s string) error { sent = append(sent, s); return nil }}

	n.ready() // a child: silent, its parent speaks for it
	if len(sent) != 0 {
		t.Fatalf("a child said %q at Ready", sent)
	}
	// An upgrade that failed before the Prepare hooks ran still opens and
	// closes a reload, in one message.
	n.done(0, errors.New("next version: no\nsuch binary"))
	if len(sent) != 1 || !strings.HasPrefix(sent[0], "RELOADING=1\nMONOTONIC_USEC=") ||
		!strings.Contains(sent[0], "\nREADY=1\n") || strings.Count(sent[0], "\n") != 4 ||
		!strings.Contains(sent[0], "STATUS=generation 3 (pid") || !strings.Contains(sent[0], "failed: next version: no such binary") {
		t.Fatalf("failed upgrade before Prepare sent %q", sent)
	}
	sent = nil
	n.prepare(context.Background(), &Handoff{generation: 4})
	n.done(4242, nil)
	if len(sent) != 2 || !strings.HasPrefix(sent[1], "MAINPID=4242\nREADY=1\nSTATUS=generation 4 (pid 4242) ready") {
		t.Fatalf("successful upgrade sent %q", sent)
	}
	sent = nil
	n.finalStop() // not reached after an upgrade, and not the main process anyway
	if len(sent) != 0 {
		t.Fatalf("sent %q after handing over", sent)
	}

	long := status("%s", strings.Repeat("é", 2000))
	if len(long) > 1100 || !strings.HasSuffix(long, "...\n") || strings.Count(long, "\n") != 1 {
		t.Errorf("long status not bounded to one line: %d bytes", len(long))
	}
}
