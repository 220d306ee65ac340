package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ErrNoWrk is wrapped by StartWrk's error when the wrk binary is missing.
var ErrNoWrk = errors.New("loadtest: wrk not found on PATH (Debian/Ubuntu: apt-get install wrk)")

// WrkOptions configure a run of wrk (https://github.com/wg/wrk), the
// keep-alive HTTP load generator used as an outside judge: it counts every
// connection that fails under it as a socket error and does not retry.
type WrkOptions struct {
	// URL to load, http or https (wrk cannot dial unix sockets).
	URL string
	// Connections is wrk -c. Zero means 32.
	Connections int
	// Threads is wrk -t. Zero means 2.
	Threads int
	// Duration is wrk -d. Zero means 10 minutes: end the run with
	// Wrk.Stop when the work under load is done.
	Duration time.Duration
	// Timeout is wrk --timeout, after which a request counts as a timeout
	// socket error. Zero means 10s: wrk's own 2s default is reached on a
	// loaded 2-core machine without any server fault.
	Timeout time.Duration
	// Binary is the wrk executable. Empty means "wrk" on PATH.
	Binary string
}

// WrkResult is what wrk printed, parsed.
type WrkResult struct {
	// Requests is the number of requests wrk completed.
	Requests int64
	// Socket errors, by kind. wrk prints them only when one is non-zero.
	Connect, Read, Write, Timeout int64
	// Non2xx counts answers with a status other than 2xx or 3xx.
	Non2xx int64
	// Output is wrk's whole output.
	Output string
}

// SocketErrors is the sum of the socket errors of every kind.
func (r WrkResult) SocketErrors() int64 { return r.Connect + r.Read + r.Write + r.Timeout }

func (r WrkResult) String() string {
	return fmt.Sprintf("wrk: %d requests, socket errors: connect %d, read %d, write %d, timeout %d; non-2xx %d",
		r.Requests, r.Connect, r.Read, r.Write, r.Timeout, r.Non2xx)
}

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkSocket   = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
)

// ParseWrk parses wrk's output. It fails when the output has no
// "N requests in" line (wrk did not run its load).
func ParseWrk(out string) (WrkResult, error) {
	r := WrkResult{Output: out}
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("loadtest: no %q line in wrk's output:\n%s", "N requests in", out)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for i, p := range []*int64{&r.Connect, &r.Read, &r.Write, &r.Timeout} {
			*p, _ = strconv.ParseInt(m[i+1], 10, 64)
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// Wrk is a running wrk process.
type Wrk struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	err  error

	stopOnce sync.Once
}

// WrkAvailable reports whether the wrk binary can be found.
func WrkAvailable() bool {
	_, err := exec.LookPath("wrk")
	return err == nil
}

// StartWrk starts wrk and returns once its load runs. End it with Stop
// (early, the usual way) or Wait.
func StartWrk(opts WrkOptions) (*Wrk, error) {
	if opts.Binary == "" {
		opts.Binary = "wrk"
	}
	bin, err := exec.LookPath(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoWrk, err)
	}
	if opts.Connections <= 0 {
		opts.Connections = 32
	}
	if opts.Threads <= 0 {
		opts.Threads = 2
	}
	if opts.Duration <= 0 {
		opts.Duration = 10 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	w := &Wrk{done: make(chan struct{})}
	w.cmd = exec.Command(bin,
		"-c", strconv.Itoa(opts.Connections),
		"-t", strconv.Itoa(opts.Threads),
		"-d", strconv.FormatInt(int64(opts.Duration/time.Second)+1, 10)+"s",
		"--timeout", strconv.FormatInt(int64(opts.Timeout/time.Second)+1, 10)+"s",
		opts.URL)
	w.cmd.Stdout = &w.out
	w.cmd.Stderr = &w.out
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start wrk: %w", err)
	}
	go func() {
		w.err = w.cmd.Wait()
		close(w.done)
	}()
	// wrk handles SIGINT (print the statistics, exit) only once its load
	// runs; a SIGINT before that kills it or is ignored.
	ctx, cancel := withDefaultTimeout(context.Background())
	defer cancel()
	if err := waitCaught(ctx, w.cmd.Process.Pid, syscall.SIGINT, w.done); err != nil {
		w.cmd.Process.Kill()
		<-w.done
		return nil, fmt.Errorf("%w\n%s", err, w.out.String())
	}
	return w, nil
}

// Stop makes wrk end its run now (SIGINT: wrk then prints its statistics)
// and returns them.
func (w *Wrk) Stop() (WrkResult, error) {
	w.stopOnce.Do(func() {
		select {
		case <-w.done:
		default:
			w.cmd.Process.Signal(os.Interrupt)
		}
	})
	ctx, cancel := withDefaultTimeout(context.Background())
	defer cancel()
	return w.Wait(ctx)
}

// Wait waits for wrk to end its run after its Duration and parses its
// output. If ctx ends first, wrk is killed. The wait is bounded by the
// run's Duration even without a deadline on ctx.
func (w *Wrk) Wait(ctx context.Context) (WrkResult, error) {
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cmd.Process.Kill()
		<-w.done
		return WrkResult{Output: w.out.String()}, fmt.Errorf("loadtest: wrk still running: %w", context.Cause(ctx))
	}
	if w.err != nil {
		return WrkResult{Output: w.out.String()}, fmt.Errorf("loadtest: wrk: %w\n%s", w.err, w.out.String())
	}
	return ParseWrk(w.out.String())
}
