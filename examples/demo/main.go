// Command demo shows a zero-downtime upgrade under load: it builds
// examples/http, starts it, drives load against it (Go clients with a new
// connection per request, keep-alive Go clients, and wrk if it is
// installed), upgrades it again and again with SIGHUP, stops it with
// SIGTERM, and prints what the clients saw. Run it from the repository:
//
//	go run ./examples/demo
//	go run ./examples/demo -upgrades 50 -clients 16 -interval 100ms
//
// It exits with status 1 if any request failed, an upgrade did not happen,
// or the listening socket changed. It needs Linux.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

const serverPkg = "github.com/tableflip-go/tableflip/examples/http"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

type options struct {
	upgrades int
	clients  int
	interval time.Duration
	wrk      bool
	progress bool // \r-updated line instead of one line per upgrade
	png      string
}

func run(args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var o options
	fs.IntVar(&o.upgrades, "upgrades", 20, "number of consecutive upgrades")
	fs.IntVar(&o.clients, "clients", 8, "Go clients of each kind (new connection per request, keep-alive)")
	fs.DurationVar(&o.interval, "interval", 250*time.Millisecond, "least time between two upgrades (each generation also serves both kinds of client first)")
	fs.BoolVar(&o.wrk, "wrk", true, "also run wrk -c32 -t2 as a keep-alive client, if wrk is installed")
	fs.StringVar(&o.png, "png", "", "also write a picture of the run (latency over time, the upgrades marked) to this PNG `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.progress = isTerminal(stdout)
	d := &demo{opts: o, out: stdout}
	err := d.run()
	if err != nil {
		d.printf("\nFAILED: %v\n", err)
		d.showServerLog()
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
	if err != nil {
		return 1
	}
	return 0
}

// isTerminal is true when w is a terminal (a character device, which in
// practice is a terminal or /dev/null).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

type demo struct {
	opts    options
	out     io.Writer
	dir     string
	logPath string

	srv       *loadtest.Server
	ln        loadtest.Listener // the first generation's
	loads     []*loadtest.Load
	wrk       *loadtest.Wrk
	upgrades  []loadtest.Upgrade
	sameSock  int // generations seen holding the first generation's socket
	lastWidth int
	sampler   *sampler // -png's timing client
}

func (d *demo) printf(format string, args ...any) {
	if d.lastWidth > 0 {
		fmt.Fprintf(d.out, "\r%*s\r", d.lastWidth, "")
		d.lastWidth = 0
	}
	fmt.Fprintf(d.out, format, args...)
}

func (d *demo) run() error {
	ctx := context.Background()
	var err error
	d.dir, err = os.MkdirTemp("", "tableflip-demo-")
	if err != nil {
		return err
	}

	start := time.Now()
	d.printf("Building examples/http with %s ... ", loadtest.GoCommand())
	bin, err := loadtest.Build(ctx, d.dir, serverPkg)
	if err != nil {
		return fmt.Errorf("%w\n(run the demo from the repository: go run ./examples/demo)", err)
	}
	d.printf("done in %v\n", time.Since(start).Round(10*time.Millisecond))

	if err := d.startServer(ctx, bin); err != nil {
		return err
	}
	defer d.srv.Close()
	if err := d.startLoad(ctx); err != nil {
		return err
	}
	defer d.stopLoad()

	for i := 1; i <= d.opts.upgrades; i++ {
		if err := d.upgrade(ctx, i); err != nil {
			return err
		}
	}
	d.endProgress()
	stats, wrk, wrkErr := d.stopLoad()

	exit, err := d.srv.Stop(ctx)
	if err != nil {
		return err
	}
	err = d.summary(stats, wrk, wrkErr, exit)
	d.writePNG()
	return err
}

func (d *demo) startServer(ctx context.Context, bin string) error {
	pidFile := filepath.Join(d.dir, "http.pid")
	d.logPath = filepath.Join(d.dir, "server.log")
	logFile, err := os.Create(d.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the server holds its own copy
	// Port 0: the first generation binds a free port, and every later one
	// inherits the same socket under the same key.
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-pidfile", pidFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	d.srv, err = loadtest.StartServer(ctx, cmd, pidFile)
	if err != nil {
		return err
	}
	lns, err := loadtest.Listeners(d.srv.PID())
	if err != nil {
		return err
	}
	if len(lns) != 1 {
		return fmt.Errorf("pid %d listens on %v, want one TCP socket", d.srv.PID(), lns)
	}
	d.ln = lns[0]
	d.sameSock = 1
	d.printf("Server: %s, pid %d, listening on %s (socket inode %d)\n", filepath.Base(bin), d.srv.PID(), d.ln.Addr, d.ln.Inode)
	return nil
}

func (d *demo) startLoad(ctx context.Context) error {
	url := "http://" + d.ln.Addr + "/"
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		l, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: url}, Mode: mode, Clients: d.opts.clients})
		if err != nil {
			return err
		}
		d.loads = append(d.loads, l)
	}
	what := fmt.Sprintf("%d Go clients with a new connection per request, %d keep-alive Go clients", d.opts.clients, d.opts.clients)
	switch {
	case !d.opts.wrk:
		what += " (wrk off: -wrk=false)"
	case !loadtest.WrkAvailable():
		what += "\n      wrk skipped: not installed (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk)"
	default:
		w, err := loadtest.StartWrk(loadtest.WrkOptions{URL: url, Connections: 32, Threads: 2})
		if err != nil {
			return err
		}
		d.wrk = w
		what += ", wrk -c32 -t2"
	}
	d.startPNG(url)
	d.printf("Load: %s\n", what)
	// Every client kind must reach the first generation before it is upgraded.
	return d.waitServed(ctx, d.srv.PID())
}

// waitServed waits until pid has answered each kind of Go client.
func (d *demo) waitServed(ctx context.Context, pid int) error {
	for _, l := range d.loads {
		if err := l.WaitServed(ctx, pid, 10); err != nil {
			return fmt.Errorf("%s clients: %w", l.Stats().Mode, err)
		}
	}
	return nil
}

func (d *demo) upgrade(ctx context.Context, i int) error {
	next := time.Now().Add(d.opts.interval)
	up, err := d.srv.Upgrade(ctx)
	if err != nil {
		return fmt.Errorf("upgrade %d: %w", i, err)
	}
	d.upgrades = append(d.upgrades, up)
	if up.OldExit.Code != 0 {
		return fmt.Errorf("upgrade %d: the old generation: %s", i, up.OldExit)
	}
	if err := d.ln.HeldBy(up.NewPID); err != nil {
		return fmt.Errorf("upgrade %d: %w", i, err)
	}
	d.sameSock++
	if err := d.waitServed(ctx, up.NewPID); err != nil {
		return fmt.Errorf("upgrade %d: %w", i, err)
	}
	if d.opts.progress {
		d.progress(fmt.Sprintf("upgrade %d/%d: pid %d -> %d, ready in %v; %s", i, d.opts.upgrades, up.OldPID, up.NewPID, ms(up.Latency), d.counts()))
	} else {
		d.printf("upgrade %2d/%d: pid %d -> %d, ready in %v, old one drained and exited after %v; %s\n",
			i, d.opts.upgrades, up.OldPID, up.NewPID, ms(up.Latency), ms(up.Exited), d.counts())
	}
	if wait := time.Until(next); wait > 0 {
		time.Sleep(wait) // pacing, so that each generation serves a while
	}
	return nil
}

// progress replaces the progress line on a terminal.
func (d *demo) progress(line string) {
	fmt.Fprintf(d.out, "\r%-*s", d.lastWidth, line)
	d.lastWidth = len(line)
}

// endProgress keeps the last progress line.
func (d *demo) endProgress() {
	if d.lastWidth > 0 {
		fmt.Fprintln(d.out)
		d.lastWidth = 0
	}
}

func (d *demo) counts() string {
	var req, fail int64
	for _, l := range d.loads {
		s := l.Stats()
		req += s.Requests
		fail += s.Failures
	}
	return fmt.Sprintf("Go clients: %d requests, %d failures", req, fail)
}

func (d *demo) stopLoad() ([]loadtest.Stats, *loadtest.WrkResult, error) {
	d.stopPNG()
	var stats []loadtest.Stats
	for _, l := range d.loads {
		stats = append(stats, l.Stop())
	}
	d.loads = nil
	if d.wrk == nil {
		return stats, nil, nil
	}
	r, err := d.wrk.Stop()
	d.wrk = nil
	return stats, &r, err
}

func (d *demo) summary(stats []loadtest.Stats, wrk *loadtest.WrkResult, wrkErr error, exit loadtest.Exit) error {
	var problems []string
	d.printf("\nWhat the clients saw over %d upgrades\n", len(d.upgrades))
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  clients\trequests\tfailed\n")
	for _, s := range stats {
		kind := "new connection per request"
		if s.Mode == loadtest.KeepAlive {
			kind = "keep-alive"
		}
		fmt.Fprintf(tw, "  %d Go clients, %s\t%d\t%d\n", d.opts.clients, kind, s.Requests, s.Failures)
		if s.Failures > 0 {
			problems = append(problems, fmt.Sprintf("%d %s requests failed", s.Failures, s.Mode))
		}
	}
	switch {
	case wrkErr != nil:
		problems = append(problems, fmt.Sprintf("wrk: %v", wrkErr))
	case wrk != nil:
		fmt.Fprintf(tw, "  wrk -c32 -t2, keep-alive\t%d\t%d\tsocket errors: connect %d, read %d, write %d, timeout %d; non-2xx: %d\n",
			wrk.Requests, wrk.SocketErrors()+wrk.Non2xx, wrk.Connect, wrk.Read, wrk.Write, wrk.Timeout, wrk.Non2xx)
		if wrk.SocketErrors() > 0 || wrk.Non2xx > 0 {
			problems = append(problems, fmt.Sprintf("wrk saw %d socket errors and %d non-2xx answers", wrk.SocketErrors(), wrk.Non2xx))
		}
	}
	tw.Flush()
	for _, s := range stats {
		for _, e := range s.Errors {
			d.printf("  %s: %s\n", s.Mode, e)
		}
	}

	gens := d.srv.Generations()
	d.printf("\nGenerations that served the Go clients\n")
	tw = tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  generation\tpid\tnew-connection\tkeep-alive\n")
	for i, pid := range gens {
		fmt.Fprintf(tw, "  %d\t%d", i+1, pid)
		for _, s := range stats {
			fmt.Fprintf(tw, "\t%d", s.ByPid[pid])
		}
		fmt.Fprintf(tw, "\n")
	}
	tw.Flush()
	for _, s := range stats {
		if len(s.Pids) != len(gens) {
			problems = append(problems, fmt.Sprintf("%s clients were served by %d pids, want %d", s.Mode, len(s.Pids), len(gens)))
		}
	}

	d.printf("\n")
	tw = tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	if len(d.upgrades) > 0 {
		var lat, exited []time.Duration
		for _, u := range d.upgrades {
			lat = append(lat, u.Latency)
			exited = append(exited, u.Exited)
		}
		fmt.Fprintf(tw, "Upgrade latency, SIGHUP to the new generation ready:\tmin %v\tmedian %v\tmax %v\n", minMedMax(lat)...)
		fmt.Fprintf(tw, "SIGHUP to the old generation drained and exited (status 0):\tmin %v\tmedian %v\tmax %v\n", minMedMax(exited)...)
	}
	tw.Flush()
	d.printf("Listening socket: %s, inode %d, the only one on its port, held by %d of %d generations\n",
		d.ln.Addr, d.ln.Inode, d.sameSock, len(gens))
	d.printf("Stop: SIGTERM to pid %d: %s\n", exit.PID, exitText(exit))
	if !exit.Reaped || exit.Code != 0 {
		problems = append(problems, "the last generation did not exit with status 0 on SIGTERM")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	d.printf("\nOK: 0 failed requests across %d upgrades\n", len(d.upgrades))
	return nil
}

func exitText(e loadtest.Exit) string {
	switch {
	case !e.Reaped:
		return "exit status unknown"
	case e.Signal != 0:
		return "killed by " + e.Signal.String()
	}
	return fmt.Sprintf("exited with status %d", e.Code)
}

func minMedMax(ds []time.Duration) []any {
	s := slices.Clone(ds)
	slices.Sort(s)
	return []any{ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)-1])}
}

func ms(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// showServerLog prints the end of the server's log after a failure.
func (d *demo) showServerLog() {
	if d.logPath == "" {
		return
	}
	b, err := os.ReadFile(d.logPath)
	if err != nil || len(b) == 0 {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	fmt.Fprintf(d.out, "\nLast lines of the server's log:\n%s\n", strings.Join(lines, "\n"))
}
