package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// The steps of an upgrade that bench/servers/traced marks, in order.
var phases = []struct{ name, from, to, what string }{
	{"signal", "sent", "sighup", "SIGHUP sent until the parent's handler runs"},
	{"start", "sighup", "main", "until the child's main runs (fork, exec, Go runtime)"},
	{"New", "main", "new", "the child's New: until it has its files"},
	{"claim", "new", "ready-call", "claim the listener, start serving, until Ready is called"},
	{"Ready", "ready-call", "ready-done", "the child's Ready"},
}

// traceResult is the time of each step of each upgrade, by implementation.
type traceResult struct {
	steps   map[string]map[string][]time.Duration // impl, phase
	pidfile map[string][]time.Duration            // SIGHUP until the pid file names the child
	parent  map[string][]time.Duration            // SIGHUP until the parent's Upgrade returned
	n       int
	fsync   []time.Duration // write, fsync and rename of a small file beside the pid files
	rename  []time.Duration // the same without the fsync
}

// timePIDWrites times writing a pid file the two ways, beside the pid
// files of the run, while the loads still run: write, fsync, rename
// (this project's tableflip) and write, rename (cloudflare/tableflip).
func timePIDWrites(dir string, n int) (withSync, without []time.Duration) {
	for i := range 2 * n {
		sync := i%2 == 0
		start := time.Now()
		f, err := os.CreateTemp(dir, ".pid.*")
		if err != nil {
			return
		}
		f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
		if sync {
			f.Sync()
		}
		f.Close()
		os.Rename(f.Name(), filepath.Join(dir, "pid-timing"))
		if sync {
			withSync = append(withSync, time.Since(start))
		} else {
			without = append(without, time.Since(start))
		}
	}
	return withSync, without
}

// runTrace runs the traced server of each implementation under the same
// load (8 new-connection and 8 keep-alive clients each), both at once, and
// upgrades them in turn.
func (b *binaries) runTrace(ctx context.Context, o options) (*traceResult, error) {
	tr := &traceResult{steps: map[string]map[string][]time.Duration{}, pidfile: map[string][]time.Duration{}, parent: map[string][]time.Duration{}, n: o.upgrades}
	type running struct {
		srv  *loadtest.Server
		log  string
		recs []*recorder
		sent []time.Time
		ups  []loadtest.Upgrade
	}
	rs := map[string]*running{}
	start := time.Now()
	for _, impl := range []string{ours, anchor} {
		name := map[string]string{ours: "ours", anchor: "anchor"}[impl]
		dir, err := os.MkdirTemp(b.dir, "trace-"+name+"-")
		if err != nil {
			return nil, err
		}
		addr, err := freePort(false)
		if err != nil {
			return nil, err
		}
		logPath := filepath.Join(dir, "log")
		logf, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		defer logf.Close()
		pid := filepath.Join(dir, "pid")
		cmd := exec.Command(b.traced, "-impl", name, "-addr", addr, "-pidfile", pid)
		cmd.Stdout, cmd.Stderr = logf, logf
		srv, err := loadtest.StartServer(ctx, cmd, pid)
		if err != nil {
			return nil, fmt.Errorf("trace %s: %w", impl, err)
		}
		defer srv.Close()
		r := &running{srv: srv, log: logPath}
		for _, k := range []clientKind{httpNewConn, httpKeepAlive} {
			r.recs = append(r.recs, startClients(k, addr, o.clients, start))
		}
		defer func() {
			for _, rec := range r.recs {
				rec.stop()
			}
		}()
		rs[impl] = r
	}
	served := func(r *running, pid int) error {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for _, rec := range r.recs {
			if err := rec.waitServed(wctx, pid, 10); err != nil {
				return err
			}
		}
		return nil
	}
	for _, impl := range []string{ours, anchor} {
		if err := served(rs[impl], rs[impl].srv.PID()); err != nil {
			return nil, err
		}
	}
	for range o.upgrades {
		for _, impl := range []string{ours, anchor} {
			r := rs[impl]
			r.sent = append(r.sent, time.Now())
			up, err := r.srv.Upgrade(ctx)
			if err != nil {
				return nil, fmt.Errorf("trace %s: %w", impl, err)
			}
			r.ups = append(r.ups, up)
			if err := served(r, up.NewPID); err != nil {
				return nil, fmt.Errorf("trace %s: %w", impl, err)
			}
			time.Sleep(o.interval / 2)
		}
	}
	tr.fsync, tr.rename = timePIDWrites(b.dir, 2*o.upgrades)
	for _, impl := range []string{ours, anchor} {
		r := rs[impl]
		for _, rec := range r.recs {
			rec.stop()
		}
		if _, err := r.srv.Stop(ctx); err != nil {
			return nil, err
		}
		marks, err := readMarks(r.log)
		if err != nil {
			return nil, err
		}
		tr.steps[impl] = map[string][]time.Duration{}
		for i, up := range r.ups {
			at := map[string]time.Time{"sent": r.sent[i]}
			for _, ev := range []string{"sighup", "upgraded"} {
				at[ev] = marks.after(up.OldPID, ev, r.sent[i])
			}
			for _, ev := range []string{"main", "new", "ready-call", "ready-done"} {
				at[ev] = marks.after(up.NewPID, ev, time.Time{})
			}
			for _, p := range phases {
				if !at[p.from].IsZero() && !at[p.to].IsZero() {
					tr.steps[impl][p.name] = append(tr.steps[impl][p.name], at[p.to].Sub(at[p.from]))
				}
			}
			tr.pidfile[impl] = append(tr.pidfile[impl], up.Latency)
			if !at["ready-call"].IsZero() {
				tr.steps[impl]["pidfile"] = append(tr.steps[impl]["pidfile"], r.sent[i].Add(up.Latency).Sub(at["ready-call"]))
			}
			if !at["upgraded"].IsZero() {
				tr.parent[impl] = append(tr.parent[impl], at["upgraded"].Sub(r.sent[i]))
			}
		}
	}
	return tr, nil
}

type marks map[int]map[string][]time.Time

// after is the first time pid marked ev after t.
func (m marks) after(pid int, ev string, t time.Time) time.Time {
	for _, x := range m[pid][ev] {
		if !x.Before(t) {
			return x
		}
	}
	return time.Time{}
}

func readMarks(path string) (marks, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := marks{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 || fs[0] != "T" {
			continue
		}
		pid, err1 := strconv.Atoi(fs[2])
		ns, err2 := strconv.ParseInt(fs[3], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if m[pid] == nil {
			m[pid] = map[string][]time.Time{}
		}
		m[pid][fs[1]] = append(m[pid][fs[1]], time.Unix(0, ns))
	}
	return m, sc.Err()
}

func (tr *traceResult) write(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n## Where the time of an upgrade goes, under load\n\n")
	p("bench/servers/traced is the same HTTP server on each library, marking each\n")
	p("step of an upgrade with a timestamp. Both run at once, each under 8 clients\n")
	p("with a new connection per request and 8 keep-alive clients, and are upgraded\n")
	p("in turn, %d times each. Means, so that the steps add up (the pid file is\n", tr.n)
	p("written inside Ready, so the last two rows overlap):\n\n")
	p("| step | %s | %s | difference |\n| --- | ---: | ---: | ---: |\n", ours, anchor)
	for _, ph := range phases {
		o, a := mean(tr.steps[ours][ph.name]), mean(tr.steps[anchor][ph.name])
		p("| %s: %s | %v | %v | %+v |\n", ph.name, ph.what, ms(o), ms(a), ms(o-a))
	}
	o, a := mean(tr.steps[ours]["pidfile"]), mean(tr.steps[anchor]["pidfile"])
	p("| Ready called until the benchmark sees the pid file name the child | %v | %v | %+v |\n", ms(o), ms(a), ms(o-a))
	o, a = mean(tr.pidfile[ours]), mean(tr.pidfile[anchor])
	p("| **SIGHUP until the pid file names the child** (mean) | **%v** | **%v** | **%.2fx** |\n", ms(o), ms(a), ratio(o, a))
	o, a = median(tr.pidfile[ours]), median(tr.pidfile[anchor])
	p("| the same, median | %v | %v | %.2fx |\n", ms(o), ms(a), ratio(o, a))
	o, a = mean(tr.parent[ours]), mean(tr.parent[anchor])
	p("| SIGHUP until the parent's Upgrade returns (mean) | %v | %v | %.2fx |\n", ms(o), ms(a), ratio(o, a))
	p("\nWriting a pid file, timed in the same folder under the same loads, %d times each\n", len(tr.fsync))
	p("way: create, write, **fsync**, rename (what tableflip/pidfile.go did until the trace\n")
	p("below found it on the path) takes median %v (mean %v); create, write, rename (what\n", ms(median(tr.fsync)), ms(mean(tr.fsync)))
	p("both libraries do now) takes median %v (mean %v).\n", ms(median(tr.rename)), ms(mean(tr.rename)))
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t / time.Duration(len(ds))
}
