//go:build linux

package tableflip_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// serverMain is the program the tests upgrade: the test binary re-executed
// with TFTEST_ROLE=server. Every generation prints one line per event on
// the stdout it inherits, and serves a small HTTP control API:
//
//	GET /                pid=<pid> gen=<generation>
//	GET /upgrade?mode=M  upgrade to a child that runs in mode M
//	GET /fds             number of open file descriptors
//	GET /spawnenv        TABLEFLIP_HANDOFF as a program we spawn sees it
func serverMain() int {
	mode := os.Getenv("TFTEST_MODE")
	pid := os.Getpid()
	if mode == "no-new" { // a binary that never calls tableflip.New
		select {}
	}
	timeout, _ := time.ParseDuration(os.Getenv("TFTEST_TIMEOUT"))
	var nextMode struct {
		sync.Mutex
		m string
	}
	stateSize, _ := strconv.Atoi(os.Getenv("TFTEST_STATE_SIZE"))
	opts := tableflip.Options{
		PIDFile:        os.Getenv("TFTEST_PIDFILE"),
		UpgradeTimeout: timeout,
		KillGrace:      2 * time.Second,
		Next: func(ctx context.Context, def *exec.Cmd) error {
			nextMode.Lock()
			defer nextMode.Unlock()
			def.Env = append(def.Env, "TFTEST_MODE="+nextMode.m)
			if nextMode.m == "bad-pidfile" {
				def.Env = append(def.Env, "TFTEST_PIDFILE=/nonexistent-dir/tableflip.pid")
			}
			if fake, ok := strings.CutPrefix(nextMode.m, "fake-"); ok {
				def.Env = append(def.Env, "TFTEST_ROLE=fakechild", "TFTEST_FAKE="+fake)
			}
			if nextMode.m == "emfile" {
				// The child may hold only a few files: receiving the
				// handoff hits EMFILE.
				def.Args = append([]string{"prlimit", "--nofile=40", def.Path}, def.Args[1:]...)
				def.Path = "/usr/bin/prlimit"
			}
			if nextMode.m == "missing-binary" {
				def.Path = "/nonexistent/tableflip-next"
			}
			return nil
		},
		SaveState: func(ctx context.Context, w io.Writer) error {
			_, err := w.Write(statePattern(pid, stateSize))
			return err
		},
	}
	if mode == "crash-before-new" {
		fmt.Printf("STARTED mode=%s pid=%d\n", mode, pid)
		return 7
	}
	upg, err := tableflip.New(opts)
	if err != nil {
		fmt.Printf("ERR pid=%d new: %v\n", pid, err)
		return 1
	}
	defer upg.Stop()
	fmt.Printf("STARTED mode=%s pid=%d gen=%d\n", mode, pid, upg.Generation())
	switch mode {
	case "crash":
		os.Exit(3)
	case "hang":
		signal.Ignore(syscall.SIGTERM)
		select {}
	case "fail":
		upg.Fail(errors.New("config invalid: port 99999 out of range"))
		return 1
	case "stop-before-ready":
		upg.Stop()
		return 1
	}

	ctx := context.Background()
	addr := os.Getenv("TFTEST_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := tcp.Listen(ctx, upg, "tcp", addr)
	if err != nil {
		fmt.Printf("FATAL pid=%d listen: %v\n", pid, err)
		return 1
	}
	n, _ := strconv.Atoi(os.Getenv("TFTEST_LISTENERS"))
	extra := make([]net.Listener, 0, n)
	for i := 0; i < n; i++ {
		l, err := tcp.Listen(ctx, upg, "tcp", extraAddr(i))
		if err != nil {
			fmt.Printf("FATAL pid=%d listen %d: %v\n", pid, i, err)
			return 1
		}
		extra = append(extra, l)
	}
	// Every extra listener must still be the one the first generation
	// bound: report a digest of their addresses.
	h := sha256.New()
	for _, l := range extra {
		fmt.Fprintln(h, l.Addr())
		l.Close()
	}

	companion := "none"
	if os.Getenv("TFTEST_COMPANION") != "" {
		// Each upgrade hands the child a fresh pipe under one name; the
		// child claims it, and must not pass it on.
		if f, meta, err := upg.Inherit("comp", "k"); err == nil {
			companion = string(meta)
			f.Close()
		}
		upg.AddHooks(tableflip.Hooks{Prepare: func(ctx context.Context, h *tableflip.Handoff) error {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			defer r.Close()
			defer w.Close()
			return h.AddFile("comp", "k", w, []byte(fmt.Sprintf("from-gen-%d", upg.Generation())))
		}})
	}
	state, err := io.ReadAll(upg.LoadState())
	if err != nil {
		fmt.Printf("ERR pid=%d read state: %v\n", pid, err)
		return 1
	}
	stateReport := "none"
	if upg.HasParent() && stateSize > 0 {
		stateReport = "bad"
		if len(state) == stateSize {
			var from int
			fmt.Sscanf(string(state), "state of %d:", &from)
			if string(state) == string(statePattern(from, stateSize)) {
				stateReport = "from:" + strconv.Itoa(from)
			}
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pid=%d gen=%d\n", pid, upg.Generation())
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		nextMode.Lock()
		nextMode.m = r.URL.Query().Get("mode")
		nextMode.Unlock()
		child, err := upg.Upgrade(r.Context())
		if err != nil {
			var ce *tableflip.ChildError
			if errors.As(err, &ce) {
				fmt.Fprintf(w, "childerr pid=%d status=%d timedout=%v reason=%q err=%v\n", ce.Pid, ce.ExitStatus, ce.TimedOut, ce.Reason, err)
				return
			}
			fmt.Fprintf(w, "err %v\n", err)
			return
		}
		fmt.Fprintf(w, "ok child=%d\n", child)
	})
	mux.HandleFunc("/fds", func(w http.ResponseWriter, r *http.Request) {
		ents, _ := os.ReadDir("/proc/self/fd")
		fmt.Fprintf(w, "%d", len(ents))
		if r.URL.Query().Get("list") != "" {
			for _, e := range ents {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				fmt.Fprintf(w, " %s=%s", e.Name(), l)
			}
		}
		fmt.Fprintln(w)
	})
	mux.HandleFunc("/spawnenv", func(w http.ResponseWriter, r *http.Request) {
		out, err := exec.Command("/bin/sh", "-c", "echo ${TABLEFLIP_HANDOFF-unset}").Output()
		if err != nil {
			fmt.Fprintf(w, "err %v\n", err)
			return
		}
		w.Write(out)
	})
	mux.HandleFunc("/waitparent", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if d, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil {
			ctx, cancel = context.WithTimeout(r.Context(), d)
			defer cancel()
		}
		fmt.Fprintf(w, "%v\n", upg.WaitForParent(ctx))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)

	// Handlers before Ready: the test may signal as soon as it sees READY.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if err := upg.Ready(); err != nil {
		fmt.Printf("READYERR pid=%d err=%v\n", pid, err)
		return 1
	}
	exe, _ := os.Readlink("/proc/self/exe")
	fmt.Printf("READY pid=%d gen=%d addr=%s extra=%x state=%s parent=%v companion=%s exe=%s\n",
		pid, upg.Generation(), ln.Addr(), h.Sum(nil)[:8], stateReport, upg.HasParent(), companion, strings.ReplaceAll(exe, " ", "_"))

	exiting := false
	select {
	case <-upg.Exit():
		exiting = true
	case <-sigs:
		// Stop first: an upgrade in flight ends, and its handler answers.
		upg.Stop()
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if exiting && os.Getenv("TFTEST_EXIT_GATE") != "" {
		// Stay the parent, serving nothing, until the test says go.
		fmt.Printf("EXITING pid=%d\n", pid)
		var line string
		fmt.Scanln(&line)
	}
	upg.Stop()
	fmt.Printf("EXIT pid=%d\n", pid)
	if os.Getenv("TFTEST_HOLD") != "" {
		io.Copy(io.Discard, os.Stdin)
	}
	return 0
}

func extraAddr(i int) string {
	return fmt.Sprintf("127.0.%d.%d:0", 1+i/250, 1+i%250)
}

// statePattern is deterministic state of the given size from pid.
func statePattern(pid, size int) []byte {
	b := make([]byte, 0, size)
	b = fmt.Appendf(b, "state of %d:", pid)
	for i := 0; len(b) < size; i++ {
		b = append(b, byte('a'+i%26))
	}
	return b[:size]
}
