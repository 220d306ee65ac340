package unixtransport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	unixtransport "github.com/tableflip-go/tableflip/transport/unix"
)

var roles = map[string]func() int{
	"server":    serverMain,
	"wrongkind": wrongKindMain,
	"listen":    listenMain,
}

// serverMain is the service the tests upgrade: the test binary
// re-executed with TFTEST_ROLE=server. It serves on the socket
// TFTEST_NETWORK at TFTEST_PATH, upgrades on SIGHUP, stops on SIGTERM, and
// prints one line per event on the stdout every generation shares:
//
//	READY pid=N gen=G          serving
//	UPGRADED pid=N child=C     its Upgrade returned
//	UPGRADEERR pid=N err=...
//	EXIT pid=N                 drained and stopped, exits 0
//	LISTENERR pid=N err=...    could not listen, exits 1
//
// What it serves: "unix": HTTP, GET / answers "pid=N\n" (drained with
// tableflip/drain). "unixpacket": each message m is answered with
// "pid=N m". "unixgram": each datagram d is answered to its sender with
// "pid=N d".
//
// TFTEST_FILEMODE (octal), TFTEST_UID and TFTEST_GID configure the file;
// TFTEST_NEXT_* variables replace TFTEST_* ones in the next generation's
// environment; TFTEST_FAIL_AFTER_LISTEN makes this generation listen and
// then Fail before Ready.
func serverMain() int {
	pid := os.Getpid()
	network := os.Getenv("TFTEST_NETWORK")
	path := os.Getenv("TFTEST_PATH")
	upg, err := tableflip.New(tableflip.Options{
		PIDFile:   os.Getenv("TFTEST_PIDFILE"),
		KillGrace: 2 * time.Second,
		Next: func(ctx context.Context, def *exec.Cmd) error {
			def.Env = nextEnv(def.Env)
			return nil
		},
	})
	if err != nil {
		return proctest.Fatal("new", err)
	}
	defer upg.Stop()

	var lc unixtransport.ListenConfig
	if m := os.Getenv("TFTEST_FILEMODE"); m != "" {
		mode, _ := strconv.ParseUint(m, 8, 32)
		lc.Mode = os.FileMode(mode)
	}
	lc.UID, _ = strconv.Atoi(os.Getenv("TFTEST_UID"))
	lc.GID, _ = strconv.Atoi(os.Getenv("TFTEST_GID"))

	ctx := context.Background()
	var (
		serve   func()
		drainFn func(context.Context) error
	)
	switch network {
	case "unix":
		var ln net.Listener
		if os.Getenv("TFTEST_BYNAME") != "" {
			ln, err = tableflip.Listen(ctx, upg, "unix://"+path)
		} else {
			ln, err = lc.Listen(ctx, upg, network, path)
		}
		if err == nil {
			srv := drain.New(&http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "pid=%d\n", pid)
			})}, drain.Options{})
			serve = func() { srv.Serve(ln) }
			drainFn = srv.Drain
		}
	case "unixpacket":
		var ln *net.UnixListener
		ln, err = lc.Listen(ctx, upg, network, path)
		if err == nil {
			s := &packetServer{ln: ln, pid: pid, conns: map[net.Conn]bool{}}
			serve = s.serve
			drainFn = s.drain
		}
	case "unixgram":
		var c *net.UnixConn
		c, err = lc.ListenPacket(ctx, upg, network, path)
		if err == nil {
			s := &gramServer{c: c, pid: pid, done: make(chan struct{})}
			serve = s.serve
			drainFn = s.drain
		}
	default:
		err = fmt.Errorf("unknown network %q", network)
	}
	if err != nil {
		fmt.Printf("LISTENERR pid=%d wrongkind=%v inuse=%v notsock=%v err=%v\n", pid,
			errors.Is(err, unixtransport.ErrWrongKind), errors.Is(err, unixtransport.ErrAddressInUse),
			errors.Is(err, unixtransport.ErrNotSocket), err)
		upg.Fail(err)
		return 1
	}
	if os.Getenv("TFTEST_FAIL_AFTER_LISTEN") != "" {
		fmt.Printf("FAILING pid=%d\n", pid)
		upg.Fail(errors.New("told to fail after listen"))
		return 1
	}
	go serve()
	// Before READY is printed: a test may signal at once.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := upg.Ready(); err != nil {
		return proctest.Fatal("ready", err)
	}
	fmt.Printf("READY pid=%d gen=%d\n", pid, upg.Generation())

	var upgrades sync.WaitGroup
	defer upgrades.Wait()
loop:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				break loop
			}
			upgrades.Add(1)
			go func() {
				defer upgrades.Done()
				child, err := upg.Upgrade(ctx)
				if err != nil {
					fmt.Printf("UPGRADEERR pid=%d err=%v\n", pid, err)
					return
				}
				fmt.Printf("UPGRADED pid=%d child=%d\n", pid, child)
			}()
		case <-upg.Exit():
			break loop
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := drainFn(dctx); err != nil {
		fmt.Printf("FATAL pid=%d drain: %v\n", pid, err)
	}
	upg.Stop()
	fmt.Printf("EXIT pid=%d\n", pid)
	return 0
}

// nextEnv applies TFTEST_NEXT_X=v as TFTEST_X=v.
func nextEnv(env []string) []string {
	out := make([]string, 0, len(env))
	set := map[string]string{}
	for _, kv := range env {
		if rest, ok := bytes.CutPrefix([]byte(kv), []byte("TFTEST_NEXT_")); ok {
			k, v, _ := bytes.Cut(rest, []byte("="))
			set["TFTEST_"+string(k)] = string(v)
			continue
		}
		out = append(out, kv)
	}
	for i, kv := range out {
		k, _, _ := bytes.Cut([]byte(kv), []byte("="))
		if v, ok := set[string(k)]; ok {
			out[i] = string(k) + "=" + v
			delete(set, string(k))
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// packetServer answers seqpacket messages.
type packetServer struct {
	ln  *net.UnixListener
	pid int
	wg  sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]bool
	draining bool
}

func (s *packetServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(fmt.Appendf(nil, "pid=%d %s", s.pid, buf[:n])); err != nil {
					return
				}
			}
		}()
	}
}

// drain stops accepting and waits for clients to hang up: a seqpacket
// connection has no in-band way to say "reconnect", so the tests' clients
// open one connection per exchange.
func (s *packetServer) drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// gramServer answers unixgram datagrams; drain stops reading with a read
// deadline on this generation's descriptor and returns once the datagram
// it read last is answered.
type gramServer struct {
	c    *net.UnixConn
	pid  int
	done chan struct{}
}

func (s *gramServer) serve() {
	defer close(s.done)
	buf := make([]byte, 64<<10)
	for {
		n, from, err := s.c.ReadFromUnix(buf)
		if err != nil {
			return
		}
		if from != nil {
			s.c.WriteToUnix(fmt.Appendf(nil, "pid=%d %s", s.pid, buf[:n]), from)
		}
	}
}

func (s *gramServer) drain(ctx context.Context) error {
	s.c.SetReadDeadline(time.Unix(1, 0))
	select {
	case <-s.done:
		return s.c.Close()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wrongKindMain passes TFTEST_PASS (see wrongKindFile) under the key
// TFTEST_NETWORK TFTEST_PATH and upgrades to a child that claims it with
// Listen or ListenPacket and must refuse it (see proctest.PassAndUpgrade
// and RefuseInherited).
func wrongKindMain() int {
	path := os.Getenv("TFTEST_PATH")
	network := os.Getenv("TFTEST_NETWORK")
	upg, err := tableflip.New(tableflip.Options{KillGrace: 2 * time.Second})
	if err != nil {
		return proctest.Fatal("new", err)
	}
	defer upg.Stop()
	if upg.HasParent() {
		return proctest.RefuseInherited(upg, unixtransport.ErrWrongKind, func() (io.Closer, error) {
			return listenAny(context.Background(), unixtransport.ListenConfig{}, upg, network, path)
		})
	}
	c, err := wrongKindFile(os.Getenv("TFTEST_PASS"), path)
	if err != nil {
		return proctest.Fatal("wrong kind", err)
	}
	defer c.Close()
	return proctest.PassAndUpgrade(upg, network, path, c, nil)
}

// wrongKindFile opens what is passed under a unix stream key at path:
//
//	tcp        a TCP listener
//	unixgram   a unix socket, but a datagram one
//	otherpath  the right kind of socket, bound to another path
//	file       a file that is no socket
func wrongKindFile(kind, path string) (proctest.Conn, error) {
	switch kind {
	case "tcp":
		return net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	case "unixgram":
		return net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path + ".gram", Net: "unixgram"})
	case "otherpath":
		return net.ListenUnix("unix", &net.UnixAddr{Name: path + ".other", Net: "unix"})
	case "file":
		return os.Open(os.DevNull)
	}
	return nil, fmt.Errorf("unknown TFTEST_PASS %q", kind)
}

// listenAny opens network at path with lc: ListenPacket for "unixgram",
// Listen for the others.
func listenAny(ctx context.Context, lc unixtransport.ListenConfig, fds tableflip.Fds, network, path string) (io.Closer, error) {
	if network == "unixgram" {
		c, err := lc.ListenPacket(ctx, fds, network, path)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	ln, err := lc.Listen(ctx, fds, network, path)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// listenMain calls Listen once on TFTEST_NETWORK TFTEST_PATH (as another
// user, for the permission test) and prints the result:
//
//	LISTEN pid=N ok=false perm=true fds_before=B fds_after=A err=...
func listenMain() int {
	pid := os.Getpid()
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		return proctest.Fatal("new", err)
	}
	defer upg.Stop()
	// Initialize the runtime's poller (an epoll fd and an eventfd) first,
	// so that it is not counted as leaked.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	before := proctest.OpenFds()
	ln, err := unixtransport.Listen(context.Background(), upg, os.Getenv("TFTEST_NETWORK"), os.Getenv("TFTEST_PATH"))
	if err == nil {
		ln.Close()
	}
	after := proctest.OpenFds()
	fmt.Printf("LISTEN pid=%d ok=%v perm=%v fds_before=%d fds_after=%d err=%v\n", pid, err == nil,
		errors.Is(err, os.ErrPermission), before, after, err)
	return 0
}
