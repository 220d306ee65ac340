// Command bench runs the same loads against this project's example servers,
// against equal servers built on cloudflare/tableflip v1.2.3 with its
// documented pattern, and against a plain stop-and-start restart, in one
// run, and writes docs/benchmarks.md with its tables and PNG plots.
//
//	cd bench && go run .            # the full run (about 12 minutes)
//	cd bench && go run . -quick     # the CI run (a few minutes)
//
// It needs Linux and wrk (Debian: apt-get install wrk).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

type options struct {
	quick    bool
	out      string // the docs folder
	upgrades int
	interval time.Duration
	clients  int
	scale    int   // wrk -c of the scale run; 0: none
	fdSizes  []int // inherited fds of the fd-cost runs
	fdReps   int
	only     string // run only the scenarios whose name holds this
	impl     string // run only the implementations whose name holds this
	soak     int    // upgrades of each soak run; 0: none
}

func (o options) scaleUpgrades(sc scenario) int {
	if sc.wrk >= 1000 {
		return 3
	}
	return o.upgrades
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "the short run for CI: fewer upgrades, 2,000 connections at scale, fds up to 10,000 with 3 upgrades each")
	flag.StringVar(&o.out, "out", "", "write benchmarks.md and its plots into this `folder` (default: the repository's docs/)")
	flag.IntVar(&o.upgrades, "upgrades", 0, "upgrades per load (default 10, quick 4)")
	flag.DurationVar(&o.interval, "interval", 0, "time each generation serves before the next upgrade (default 500ms, quick 300ms)")
	flag.IntVar(&o.clients, "clients", 8, "Go clients per load")
	flag.IntVar(&o.scale, "scale", -1, "wrk -c of the scale run, 0 for none (default 10000, quick 2000)")
	flag.StringVar(&o.only, "only", "", "run only the loads whose name contains this (new-conn, keep-alive, wrk, unix, https, udp, quic, scale, fds, trace, soak)")
	flag.IntVar(&o.soak, "soak", -1, "upgrades of each soak (internal/soak, counter and http), 0 for none (default 200, quick 0)")
	flag.StringVar(&o.impl, "impl", "", "run the loads only against the implementations whose name contains this (tableflip-go, cloudflare, stop)")
	flag.Parse()
	def := func(v *int, full, quick int) {
		if *v <= 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.upgrades, 10, 4)
	if o.interval <= 0 {
		o.interval = 500 * time.Millisecond
		if o.quick {
			o.interval = 300 * time.Millisecond
		}
	}
	if o.soak < 0 {
		o.soak = 200
		if o.quick {
			o.soak = 0
		}
	}
	if o.scale < 0 {
		o.scale = 10000
		if o.quick {
			o.scale = 2000
		}
	}
	o.fdSizes, o.fdReps = []int{1, 10, 100, 1000, 3000, 10000}, 7
	if o.quick {
		o.fdSizes, o.fdReps = []int{1, 100, 10000}, 3
	}
	raiseNofile()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type binaries struct {
	dir                    string
	http, tls, udp, anchor string
	quic                   string
	fds, traced            string
	cert, key              string
}

func run(o options) error {
	if runtime.GOOS != "linux" {
		return errors.New("needs Linux (pidfds, /proc)")
	}
	if !loadtest.WrkAvailable() {
		return loadtest.ErrNoWrk
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "docs")
	}
	ctx := context.Background()
	began := time.Now()
	m := readMachine()
	fmt.Printf("machine: %s\n", m)

	dir, err := os.MkdirTemp("", "tableflip-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &binaries{dir: dir}
	fmt.Print("building ... ")
	for _, t := range []struct {
		dst *string
		pkg string
		in  string
	}{
		{&b.http, "./examples/http", root},
		{&b.tls, "./examples/tls", root},
		{&b.udp, "./examples/udp", root},
		{&b.quic, ".", filepath.Join(root, "examples", "quic")}, // its own module
		{&b.anchor, "./servers/anchor", filepath.Join(root, "bench")},
		{&b.fds, "./servers/fds", filepath.Join(root, "bench")},
		{&b.traced, "./servers/traced", filepath.Join(root, "bench")},
	} {
		if *t.dst, err = build(ctx, t.in, dir, t.pkg); err != nil {
			return err
		}
	}
	if b.cert, b.key, err = writeCert(dir); err != nil {
		return err
	}
	fmt.Printf("done in %v\n", time.Since(began).Round(100*time.Millisecond))

	rep := &report{machine: m, opts: o, tmp: dir}
	scenarios := []scenario{
		{name: "new-conn", title: "HTTP, a new connection per request", kind: httpNewConn, clients: o.clients},
		{name: "keep-alive", title: "HTTP, keep-alive connections", kind: httpKeepAlive, clients: o.clients},
		{name: "wrk", title: "wrk -c32 -t2, keep-alive", kind: httpKeepAlive, wrk: 32},
		{name: "unix", title: "HTTP over a unix socket, a new connection per request", kind: unixNewConn, clients: o.clients},
		{name: "https", title: "HTTPS, a new connection per request, resuming TLS sessions", kind: httpsResume, clients: o.clients},
		{name: "udp", title: "UDP echo, one datagram at a time per client", kind: udpEcho, clients: o.clients},
		{name: "quic", title: "QUIC, long-lived connections (1 s each), a stream per request", kind: quicEcho, clients: o.clients},
	}
	if o.scale > 0 {
		scenarios = append(scenarios, scenario{name: "scale", title: fmt.Sprintf("wrk -c%d -t2, keep-alive", o.scale), kind: httpKeepAlive, wrk: o.scale})
	}
	m.loadBefore = loadAvg()
	for _, sc := range scenarios {
		if o.only != "" && !strings.Contains(sc.name, o.only) {
			continue
		}
		for _, impl := range impls {
			if o.impl != "" && !strings.Contains(impl, o.impl) {
				continue
			}
			t := time.Now()
			fmt.Printf("%-11s %-21s ", sc.name, impl)
			r := b.runLoad(ctx, sc, impl, o)
			rep.results = append(rep.results, r)
			fmt.Printf("%s (%v)\n", r.summary(), time.Since(t).Round(100*time.Millisecond))
		}
	}
	if o.only == "" || strings.Contains("fds", o.only) {
		fmt.Println("fd cost:")
		rep.fds, err = b.runFds(ctx, o)
		if err != nil {
			return err
		}
	}
	if o.only == "" || strings.Contains("trace", o.only) {
		fmt.Println("trace:")
		rep.trace, err = b.runTrace(ctx, o)
		if err != nil {
			return err
		}
		var sb strings.Builder
		rep.trace.write(&sb)
		fmt.Print(sb.String())
	}
	if o.soak > 0 && (o.only == "" || strings.Contains("soak", o.only)) {
		fmt.Println("soak:")
		rep.soaks = runSoak(ctx, root, o.soak)
	}
	m.loadAfter = loadAvg()
	rep.machine = m
	rep.took = time.Since(began)
	if err := rep.write(o.out); err != nil {
		return err
	}
	fmt.Printf("wrote %s in %v\n", filepath.Join(o.out, "benchmarks.md"), rep.took.Round(time.Second))
	return rep.verdict()
}

// verdict fails the run when a load could not be run through, or when a
// client of this project's servers saw a failed request in a load other
// than the scale run (whose wrk timeouts depend on how loaded the machine
// is: its numbers are reported, not judged).
func (rep *report) verdict() error {
	var problems []string
	for _, r := range rep.results {
		if r.err != nil {
			problems = append(problems, fmt.Sprintf("%s, %s: %v", r.scenario.name, r.impl, rep.scrub(oneLine(r.err))))
			continue
		}
		if _, failed := r.total(); r.impl == ours && r.scenario.name != "scale" && failed > 0 {
			problems = append(problems, fmt.Sprintf("%s, %s: %d failed requests (%s)", r.scenario.name, r.impl, failed, r.kinds()))
		}
	}
	for _, s := range rep.soaks {
		if !s.passed {
			problems = append(problems, fmt.Sprintf("soak, %s: %s", s.program, rep.scrub(s.failure)))
		}
	}
	if len(problems) > 0 {
		return errors.New("FAIL:\n  " + strings.Join(problems, "\n  "))
	}
	return nil
}

// repoRoot finds the repository root: the nearest folder up from here
// whose go.mod is the core module.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/tableflip-go/tableflip\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("run it inside the repository (cd bench && go run .)")
		}
	}
}

// build builds pkg of the module in folder in, into dir; the binary is
// named after the package's folder, from the repository root.
func build(ctx context.Context, in, dir, pkg string) (string, error) {
	name := filepath.Join(filepath.Base(filepath.Dir(in)), filepath.Base(in))
	if pkg != "." {
		name = pkg
	}
	out := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(filepath.Clean(name), "./"), "/", "-"))
	cmd := exec.CommandContext(ctx, loadtest.GoCommand(), "build", "-o", out, pkg)
	cmd.Dir = in
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// freePort returns a loopback address with a port free now.
func freePort(udp bool) (string, error) {
	if udp {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
