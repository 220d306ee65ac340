//go:build linux

// Command soak upgrades examples/counter (or examples/http) 200 times under
// load and checks that nothing is lost or grows: no failed request, the
// final counter value equal to the increments acknowledged, every old
// generation exiting 0, no process left over, and each generation's
// descriptors, threads, goroutines (counter only) and resident memory flat
// from the first generation to the last.
//
//	go run ./internal/soak                  # 200 upgrades, about a minute
//	go run ./internal/soak -program http
//	go run ./internal/soak -upgrades 50 -race
//
// It is not part of `go test ./...`: run it before a release. It prints one
// line per 20 upgrades and a summary, and exits 1 on any failed check.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

func main() {
	upgrades := flag.Int("upgrades", 200, "number of consecutive upgrades")
	race := flag.Bool("race", false, "build the program with -race")
	prog := flag.String("program", "counter", "the example to soak: counter, or http (no goroutine count, no increments)")
	flag.Parse()
	if *prog != "counter" && *prog != "http" {
		fmt.Fprintln(os.Stderr, "soak: -program must be counter or http")
		os.Exit(2)
	}
	if err := soak(*prog, *upgrades, *race); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// sample is one generation, measured just before it is upgraded.
type sample struct {
	pid        int
	fds        int
	threads    int
	rssKB      int
	goroutines int
}

func soak(prog string, upgrades int, race bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tableflip-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var flags []string
	if race {
		flags = append(flags, "-race")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin, err := loadtest.Build(ctx, dir, filepath.Join(root, "examples", prog), flags...)
	if err != nil {
		return err
	}
	pidFile := filepath.Join(dir, prog+".pid")
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-pidfile", pidFile)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	srv, err := loadtest.StartServer(ctx, cmd, pidFile)
	if err != nil {
		return err
	}
	defer srv.Close()
	lns, err := loadtest.Listeners(srv.PID())
	if err != nil || len(lns) != 1 {
		return fmt.Errorf("listeners of %d: %v %v", srv.PID(), lns, err)
	}
	url := "http://" + lns[0].Addr + "/"

	var reads []*loadtest.Load
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		l, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: url}, Mode: mode, Clients: 2})
		if err != nil {
			return err
		}
		defer l.Stop()
		reads = append(reads, l)
	}
	counter := prog == "counter"
	incs := &incs{}
	if counter {
		incs = startIncs(url, 4)
	}
	defer incs.stop()

	var samples []sample
	start := time.Now()
	for i := 1; i <= upgrades; i++ {
		for _, l := range reads {
			if err := l.WaitServed(ctx, srv.PID(), l.Stats().ByPid[srv.PID()]+3); err != nil {
				return fmt.Errorf("generation %d: %w", i, err)
			}
		}
		s, err := measure(url, srv.PID(), counter)
		if err != nil {
			return fmt.Errorf("generation %d: %w", i, err)
		}
		samples = append(samples, s)
		up, err := srv.Upgrade(ctx)
		if err != nil {
			return fmt.Errorf("upgrade %d: %w", i, err)
		}
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			return fmt.Errorf("upgrade %d: old generation %v", i, up.OldExit)
		}
		if kids := children(up.NewPID); len(kids) != 0 {
			return fmt.Errorf("upgrade %d: the new generation has children %v", i, kids)
		}
		if i%20 == 0 {
			fmt.Printf("upgrade %3d after %5.1fs: pid %d fds=%d threads=%d rss=%dkB goroutines=%d; %d increments acknowledged\n",
				i, time.Since(start).Seconds(), s.pid, s.fds, s.threads, s.rssKB, s.goroutines, incs.acked.Load())
		}
	}
	last, err := measure(url, srv.PID(), counter)
	if err != nil {
		return err
	}
	samples = append(samples, last)

	var errs []error
	for _, l := range reads {
		st := l.Stop()
		fmt.Println(st)
		if st.Failures != 0 {
			errs = append(errs, fmt.Errorf("%s: %d requests failed", st.Mode, st.Failures))
		}
	}
	incs.stop()
	if counter {
		fmt.Printf("increments: %d acknowledged, %d failed\n", incs.acked.Load(), incs.failed.Load())
		if incs.failed.Load() != 0 {
			errs = append(errs, fmt.Errorf("%d increments failed: %v", incs.failed.Load(), incs.errs))
		}
		value, err := getValue(url)
		if err != nil {
			errs = append(errs, err)
		} else if value != incs.acked.Load() {
			errs = append(errs, fmt.Errorf("final value %d, want %d acknowledged increments", value, incs.acked.Load()))
		}
	}
	exit, err := srv.Stop(ctx)
	if err != nil || !exit.Reaped || exit.Code != 0 {
		errs = append(errs, fmt.Errorf("SIGTERM: %v %v", exit, err))
	}
	if kids := children(os.Getpid()); len(kids) != 0 {
		errs = append(errs, fmt.Errorf("processes left: %v", kids))
	}
	errs = append(errs, report(samples)...)
	fmt.Printf("%d upgrades in %.1fs\n", upgrades, time.Since(start).Seconds())
	if len(errs) > 0 {
		b, _ := os.ReadFile(logFile.Name())
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fmt.Fprintln(os.Stderr, "last log lines:\n"+strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	return errors.Join(errs...)
}

// report prints the range of each measure over the generations and checks
// that none grows: at its most, the last tenth of the generations may not
// exceed the first tenth at its most by more than the noise of the moment
// each was measured (open connections and their goroutines, the runtime's
// threads), nor by more than a quarter in resident memory.
func report(samples []sample) []error {
	tenth := max(1, len(samples)/10)
	first, last := samples[:tenth], samples[len(samples)-tenth:]
	var errs []error
	for _, m := range []struct {
		name  string
		get   func(sample) int
		limit func(firstMax int) int
	}{
		{"fds", func(s sample) int { return s.fds }, func(n int) int { return n + 2 }},
		{"threads", func(s sample) int { return s.threads }, func(n int) int { return n + 2 }},
		{"goroutines", func(s sample) int { return s.goroutines }, func(n int) int { return n + 4 }},
		{"rss_kB", func(s sample) int { return s.rssKB }, func(n int) int { return n * 5 / 4 }},
	} {
		all := values(samples, m.get)
		if all[0] < 0 {
			continue // not measured
		}
		fmt.Printf("%-10s first %6d  last %6d  min %6d  max %6d\n", m.name, all[0], all[len(all)-1], slices.Min(all), slices.Max(all))
		firstMax, lastMax := slices.Max(values(first, m.get)), slices.Max(values(last, m.get))
		if lastMax > m.limit(firstMax) {
			errs = append(errs, fmt.Errorf("%s grows: the last generations up to %d, the first ones up to %d", m.name, lastMax, firstMax))
		}
	}
	return errs
}

func values(ss []sample, get func(sample) int) []int {
	out := make([]int, len(ss))
	for i, s := range ss {
		out[i] = get(s)
	}
	return out
}

// measure reads pid's descriptors, threads and resident memory from /proc,
// and its goroutines from examples/counter's GET /debug/runtime (-1 for
// examples/http, which does not say).
func measure(url string, pid int, counter bool) (sample, error) {
	s := sample{pid: pid}
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			s.rssKB, _ = strconv.Atoi(f[0])
		case "Threads":
			s.threads, _ = strconv.Atoi(f[0])
		}
	}
	if !counter {
		s.goroutines = -1
		return s, nil
	}
	body, err := get(url + "debug/runtime")
	if err != nil {
		return s, err
	}
	f := fields(body)
	if f["pid"] != strconv.Itoa(pid) {
		return s, fmt.Errorf("debug/runtime answered by pid %s, want %d", f["pid"], pid)
	}
	s.goroutines, err = strconv.Atoi(f["goroutines"])
	return s, err
}

func getValue(url string) (int64, error) {
	body, err := get(url)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(fields(body)["value"], 10, 64)
}

func get(url string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: loadtest.DefaultTimeout}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s %q", url, resp.Status, b)
	}
	return string(b), err
}

func fields(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

// incs is clients that POST /inc back to back, half of them over
// keep-alive connections. Each request runs to its end, even at stop, so
// that every increment the server made is either acknowledged or failed.
type incs struct {
	stopping atomic.Bool
	wg       sync.WaitGroup
	acked    atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	errs     []string
}

func startIncs(url string, clients int) *incs {
	l := &incs{}
	for i := range clients {
		tr := &http.Transport{DisableKeepAlives: i%2 == 0}
		c := &http.Client{Transport: tr, Timeout: 40 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			for !l.stopping.Load() {
				err := inc(c, url)
				if err == nil {
					l.acked.Add(1)
					continue
				}
				l.failed.Add(1)
				l.mu.Lock()
				if len(l.errs) < 5 {
					l.errs = append(l.errs, err.Error())
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func inc(c *http.Client, url string) error {
	resp, err := c.Post(url+"inc", "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || fields(string(b))["value"] == "" {
		return fmt.Errorf("%s %q", resp.Status, b)
	}
	return nil
}

func (l *incs) stop() {
	l.stopping.Store(true)
	l.wg.Wait()
}

// children lists pid's child processes.
func children(pid int) []int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// moduleRoot is the directory of the go.mod this command belongs to, from
// the current directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/tableflip-go/tableflip\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run soak inside the tableflip module")
		}
		dir = parent
	}
}
