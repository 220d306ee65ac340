package main

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/tableflip/drain"
)

// analysis.md is the part of docs/benchmarks.md written by hand: what the
// traces of an upgrade under load showed. It is kept beside the code that
// measures it and copied in as is.
//
//go:embed analysis.md
var analysis string

type report struct {
	tmp     string // the run's temporary folder, kept out of the docs
	machine machine
	opts    options
	results []result
	fds     []fdResult
	trace   *traceResult
	soaks   []soakResult
	took    time.Duration
}

func (rep *report) byScenario() ([]scenario, map[string][]result) {
	var order []scenario
	m := map[string][]result{}
	for _, r := range rep.results {
		if _, ok := m[r.scenario.name]; !ok {
			order = append(order, r.scenario)
		}
		m[r.scenario.name] = append(m[r.scenario.name], r)
	}
	return order, m
}

func (rep *report) write(dir string) error {
	imgDir := filepath.Join(dir, "benchmarks")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := rep.machine
	mode := ""
	if rep.opts.quick {
		mode = " -quick"
	}
	p("# Benchmarks\n\n")
	p("Everything below was measured in one run of\n\n```sh\ncd bench && go run .%s\n```\n\n", mode)
	p("(`go run . -quick` is the short run CI does.) It builds this project's\n")
	p("examples (examples/http, examples/tls, examples/udp, examples/quic) and equal servers built on\n")
	p("cloudflare/tableflip v1.2.3 with its documented pattern (`tableflip.New`,\n")
	p("`upg.Listen`, `upg.Ready`, `<-upg.Exit()`, `http.Server.Shutdown`;\n")
	p("bench/servers/anchor), and runs the same loads against each, and against a\n")
	p("plain stop-and-start restart of the same server without either library\n")
	p("(SIGTERM, wait for the exit, start again), which is what a service gets without\n")
	p("an upgrade library.\n\n")
	p("Machine: %d CPUs (%s), Linux %s, %s, open file limit %d; shared with other\n", m.cpus, m.cpuModel, m.kernel, m.goVersion, m.nofile)
	p("work: load average %s at the start and %s at the end. %s, %v in all.\n\n",
		m.loadBefore, m.loadAfter, m.date.Format("2006-01-02 15:04 UTC"), rep.took.Round(time.Second))
	p("Each load runs %d Go clients (except wrk), an upgrade every %v or so (each\n", rep.opts.clients, rep.opts.interval)
	p("generation first answers 20 requests), %d upgrades per load. A request that\n", rep.opts.upgrades)
	p("fails is counted and never retried. Upgrade latency is SIGHUP until the pid\n")
	p("file names the new generation (both libraries write it when the new\n")
	p("generation is ready); for the restart it is SIGTERM until the new process has\n")
	p("written it.\n\n")

	order, by := rep.byScenario()
	if len(order) > 0 {
		rep.glance(&b, order, by, imgDir)
		rep.loads(&b, order, by, imgDir)
		rep.scale(&b, by["scale"])
	}
	if len(rep.fds) > 0 {
		rep.fdCost(&b, imgDir)
	}
	if len(rep.soaks) > 0 {
		rep.soak(&b)
	}
	if rep.trace != nil {
		rep.trace.write(&b)
	}
	b.WriteString("\n")
	b.WriteString(analysis)
	return os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(b.String()), 0o644)
}

func pct(failed, ok int64) float64 {
	if ok+failed == 0 {
		return 0
	}
	return 100 * float64(failed) / float64(ok+failed)
}

func (rep *report) glance(b *strings.Builder, order []scenario, by map[string][]result, imgDir string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## At a glance: failed requests\n\n")
	p("![failed requests per load](benchmarks/failures.png)\n\n")
	header(b, "load", "")
	var names []string
	rates := map[string][]float64{}
	lat := map[string][][]time.Duration{}
	for _, sc := range order {
		names = append(names, sc.name)
		p("| %s |", sc.title)
		rs := byImpl(by[sc.name])
		for _, impl := range impls {
			r, ok := rs[impl]
			if !ok {
				p(" - |")
				rates[impl] = append(rates[impl], 0)
				lat[impl] = append(lat[impl], nil)
				continue
			}
			good, failed := r.total()
			rates[impl] = append(rates[impl], pct(failed, good))
			lat[impl] = append(lat[impl], r.latencies())
			cell := fmt.Sprintf("**%d** of %d", failed, good+failed)
			if r.wrk != nil && r.wrk.Timeout > 0 {
				cell += fmt.Sprintf(" (%d answered after more than %v)", r.wrk.Timeout, wrkTimeout)
			}
			if r.err != nil {
				cell += " (run stopped: " + rep.scrub(oneLine(r.err)) + ")"
			}
			p(" %s |", cell)
		}
		p("\n")
	}
	p("\nFor the wrk loads, failed is what wrk counts as errors. Its read errors include\n")
	p("keep-alive connections the server closed while no request was on them, which\n")
	p("lose nothing: \"What wrk's errors are\", under Scale, bounds the requests really\n")
	p("lost at that scale.\n")
	p("\nWhat failed, by kind (the first message of each run is in its section):\n\n")
	for _, sc := range order {
		for _, r := range by[sc.name] {
			if kinds := r.kinds(); kinds != "" {
				p("- %s, %s: %s\n", sc.name, r.impl, kinds)
			}
		}
	}
	p("\n## Upgrade latency\n\n![upgrade latency](benchmarks/upgrade-latency.png)\n\n")
	p("| load | %s median (max) | %s median (max) | ratio of medians | %s median (max) |\n", ours, anchor, restart)
	p("| --- | ---: | ---: | ---: | ---: |\n")
	for _, sc := range order {
		rs := byImpl(by[sc.name])
		mo, ma := median(rs[ours].latencies()), median(rs[anchor].latencies())
		p("| %s | %v (%v) | %v (%v) | %.2fx | %v (%v) |\n", sc.name, ms(mo), ms(maxOf(rs[ours].latencies())),
			ms(ma), ms(maxOf(rs[anchor].latencies())), ratio(mo, ma),
			ms(median(rs[restart].latencies())), ms(maxOf(rs[restart].latencies())))
	}
	p("\nClient latency, p99 of the answered requests sent during an upgrade (SIGHUP, or\n")
	p("SIGTERM for the restart, until the old generation exited) against the rest of\n")
	p("the run (steady), and the first over the second:\n\n")
	header(b, "load", " window", "steady", "ratio")
	for _, sc := range order {
		if sc.wrk > 0 {
			continue
		}
		p("| %s |", sc.name)
		rs := byImpl(by[sc.name])
		for _, impl := range impls {
			r, ok := rs[impl]
			if !ok {
				p(" - | - | - |")
				continue
			}
			w, s := r.windowP99()
			rt := "-"
			if w > 0 && s > 0 {
				rt = fmt.Sprintf("%.2fx", ratio(w, s))
			}
			p(" %s | %s | %s |", dash(w), dash(s), rt)
		}
		p("\n")
	}
	plotFailures(filepath.Join(imgDir, "failures.png"), names, rates)
	plotUpgradeLatency(filepath.Join(imgDir, "upgrade-latency.png"), names, lat)
}

// header writes a table's head: first, then cols for each
// implementation, the first of them after the implementation's name.
func header(b *strings.Builder, first string, cols ...string) {
	fmt.Fprintf(b, "| %s |", first)
	for _, impl := range impls {
		for i, c := range cols {
			if i == 0 {
				c = impl + c
			}
			fmt.Fprintf(b, " %s |", c)
		}
	}
	b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(impls)*len(cols)) + "\n")
}

// byImpl is a load's results by implementation.
func byImpl(rs []result) map[string]result {
	m := map[string]result{}
	for _, r := range rs {
		m[r.impl] = r
	}
	return m
}

func (r result) kinds() string {
	if r.wrk != nil {
		w := r.wrk
		if w.SocketErrors()+w.Non2xx == 0 {
			return ""
		}
		return fmt.Sprintf("wrk: connect %d, read %d, write %d, non-2xx %d; answered after more than %v: %d", w.Connect, w.Read, w.Write, w.Non2xx, wrkTimeout, w.Timeout)
	}
	var ks []string
	for k, n := range r.errs {
		ks = append(ks, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func (rep *report) loads(b *strings.Builder, order []scenario, by map[string][]result, imgDir string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n## Each load over time\n\n")
	p("Left: latency of the answered requests, p50 (gray) and p99 per 100 ms; right:\n")
	p("failed requests per 100 ms. Dashed lines mark each upgrade (SIGHUP, or SIGTERM\n")
	p("for the restart).\n")
	for _, sc := range order {
		if sc.wrk > 0 {
			continue
		}
		rs := by[sc.name]
		p("\n### %s\n\n![%s](benchmarks/load-%s.png)\n\n", sc.title, sc.name, sc.name)
		plotLoad(filepath.Join(imgDir, "load-"+sc.name+".png"), rs)
		for _, r := range rs {
			if len(r.first) > 0 {
				p("- %s, first failure: `%s`\n", r.impl, rep.scrub(r.first[0]))
			}
		}
		if sc.kind == quicEcho {
			p("\nEach client holds one QUIC connection (ALPN `echo`, examples/quic's\n")
			p("protocol) for %v, opening a stream per request, then closes it and\n", quicLifetime)
			p("dials again; a connection on which a request fails is broken, and the\n")
			p("client dials again at once. This project's old generation keeps answering\n")
			p("its connections, their datagrams steered to it by connection ID\n")
			p("(transport/quic), until they close. cloudflare/tableflip shares the plain\n")
			p("UDP socket (`upg.ListenPacket`) with the next generation, which steers\n")
			p("nothing, so its old generation closes its connections at `Exit`\n")
			p("(bench/servers/anchor `-mode quic`).\n\n")
			p("| | connections opened | broken | failed requests |\n| --- | ---: | ---: | ---: |\n")
			for _, r := range rs {
				_, failed := r.total()
				p("| %s | %d | **%d** | %d |\n", r.impl, r.dialed, r.broken, failed)
			}
		}
		if sc.kind == httpsResume {
			p("\nTLS sessions resumed (a resumed session skips the full handshake):\n\n")
			p("| | all requests | a client's first request to a new generation |\n| --- | ---: | ---: |\n")
			for _, r := range rs {
				all, after := r.resumed()
				p("| %s | %.0f%% | %.0f%% |\n", r.impl, 100*all, 100*after)
			}
		}
	}
	if rs := by["wrk"]; len(rs) > 0 {
		p("\n### wrk -c32 -t2\n\n| | requests | failed | answered after more than %v |\n| --- | ---: | ---: | ---: |\n", wrkTimeout)
		for _, r := range rs {
			if r.wrk != nil {
				p("| %s | %d | %s | %d |\n", r.impl, r.wrk.Requests, wrkCell(r.wrk), r.wrk.Timeout)
			}
		}
	}
}

// wrkCell is wrk's failures: connect, read and write errors, and non-2xx
// answers.
func wrkCell(w *loadtest.WrkResult) string {
	return fmt.Sprintf("**%d** (connect %d, read %d, write %d; non-2xx %d)", wrkFailed(w), w.Connect, w.Read, w.Write, w.Non2xx)
}

func (rep *report) scale(b *strings.Builder, rs []result) {
	if len(rs) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n## Scale: %d keep-alive connections through %d upgrades\n\n", rs[0].conns, len(rs[0].upgrades))
	p("`wrk -c%d -t2 --timeout %v`, the open file limit raised to its hard limit (%d)\n", rs[0].conns, wrkTimeout, rep.machine.nofile)
	p("for the servers and wrk. 20,000 connections would need more than that limit in\n")
	p("wrk and in the old generation, and the hard limit cannot be raised here.\n\n")
	p("| | requests | failed | answered after more than %v | memory per connection | upgrade latency median (max) | drain, ready to old exited, median (max) |\n", wrkTimeout)
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		if r.wrk == nil {
			p("| %s | run failed: %s | | | | | |\n", r.impl, rep.scrub(oneLine(r.err)))
			continue
		}
		per := "-"
		if r.fdsLoaded > 0 {
			per = fmt.Sprintf("%.1f KiB (%d fds open)", float64(r.rssLoaded-r.rssIdle)/float64(r.conns), r.fdsLoaded)
		}
		p("| %s | %d | %s | %d | %s | %v (%v) | %v (%v) |\n", r.impl, r.wrk.Requests, wrkCell(r.wrk), r.wrk.Timeout, per,
			ms(median(r.latencies())), ms(maxOf(r.latencies())), ms(median(r.drainTimes)), ms(maxOf(r.drainTimes)))
	}
	var o, a result
	for _, r := range rs {
		switch r.impl {
		case ours:
			o = r
		case anchor:
			a = r
		}
	}
	p("\nUpgrade latency at this scale, %s over %s: **%.2fx** (medians).\n", ours, anchor, ratio(median(o.latencies()), median(a.latencies())))
	p("Memory per connection is the serving process's resident set with every\n")
	p("connection open, less the same before the load, over the connections.\n")

	p("\n### What wrk's errors are at this scale\n\n")
	p("wrk 4.1.0 (Debian's) counts a **read error** whenever the server closes a\n")
	p("keep-alive connection it holds, also one on which it has no request\n")
	p("outstanding (src/wrk.c, `socket_readable`: end of file with no answer\n")
	p("begun), and then sends its next request on a new connection; wrk's current\n")
	p("source reconnects without counting. A read error is a lost request only\n")
	p("if the request had reached the server: then the server's kernel resets the\n")
	p("connection, counted below as closed on unread data, or as data after close\n")
	p("when it came in just after the close. Its **timeouts** are answers that took\n")
	p("more than %v; it counts them among its requests too, and counts nothing for\n", wrkTimeout)
	p("a request never answered. At this scale they come from the reconnections:\n")
	p("%d clients reconnecting within a second or two overflow the new\n", rs[0].conns)
	p("generation's accept queue, the kernel drops the handshake's last ACK, and\n")
	p("the client waits for the SYN-ACK to be sent again (after 1 s, 2 s, 4 s, ...).\n")
	p("The columns marked machine are its TCP counters (/proc/net/netstat)\n")
	p("from the start of wrk until just before it exits, so other work on the\n")
	p("machine adds to them.\n\n")
	p("| | wrk read errors | idle connections its drains closed past their grace | machine: accept queue overflows | machine: closed on unread data | machine: data after close | requests lost, at most |\n")
	p("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		if r.wrk == nil {
			continue
		}
		closed := "-"
		if r.drain.drains > 0 {
			closed = fmt.Sprint(r.drain.closedIdle + r.drain.closedNew)
		}
		lost := r.wrk.Connect + r.wrk.Write + r.wrk.Non2xx + min(r.wrk.Read, r.listen.abortOnClose+r.listen.abortOnData)
		p("| %s | %d | %s | %d | %d | %d | **%d** |\n", r.impl, r.wrk.Read, closed, r.listen.overflows, r.listen.abortOnClose, r.listen.abortOnData, lost)
	}
	p("\nRequests lost, at most: wrk's connect and write errors and non-2xx answers,\n")
	p("and of its read errors no more than the machine's resets on unread data and\n")
	p("on data after close (a request that reached the server and was not answered\n")
	p("causes one of them).\n")
	p("\nThis project's drain (tableflip/drain) gives an idle connection %v to\n", drain.DefaultIdleGrace)
	p("send its next request, and closes it after that; a client that sends within\n")
	p("the grace is answered with `Connection: close`, and reconnects without an\n")
	p("error. cloudflare/tableflip's `http.Server.Shutdown` closes every idle\n")
	p("connection at once.\n")
}

func (rep *report) fdCost(b *strings.Builder, imgDir string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n## The cost of each inherited fd\n\n![upgrade latency by inherited fds](benchmarks/fd-cost.png)\n\n")
	p("bench/servers/fds listens on N TCP addresses and upgrades to itself on SIGHUP;\n")
	p("the new generation claims every listener again (this project: `tcp.Listen`;\n")
	p("cloudflare/tableflip: `upg.Listen`). The two alternate, upgrade by upgrade, %d\n", rep.opts.fdReps)
	p("upgrades each per size; medians. Latency is SIGHUP until the pid file names\n")
	p("the new generation.\n\n")
	p("| fds | %s | %s | ratio | %s per fd | %s per fd | ratio per fd |\n", ours, anchor, ours, anchor)
	p("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	base := map[string]time.Duration{ours: median(rep.fds[0].latencies[ours]), anchor: median(rep.fds[0].latencies[anchor])}
	for _, r := range rep.fds {
		mo, ma := median(r.latencies[ours]), median(r.latencies[anchor])
		po, pa := "-", "-"
		pr := "-"
		if r.n >= 1000 { // below, the start's noise is larger than the fds' cost
			n := time.Duration(r.n - rep.fds[0].n)
			do, da := (mo-base[ours])/n, (ma-base[anchor])/n
			po, pa = fmt.Sprint(do.Round(10*time.Nanosecond)), fmt.Sprint(da.Round(10*time.Nanosecond))
			pr = fmt.Sprintf("%.2fx", ratio(do, da))
		}
		p("| %d | %v | %v | %.2fx | %s | %s | %s |\n", r.n, ms(mo), ms(ma), ratio(mo, ma), po, pa, pr)
	}
	p("\nPer fd is (latency at N - latency at %d) / (N - %d), from 1,000 fds: below\n", rep.fds[0].n, rep.fds[0].n)
	p("that, the noise of a process start on this machine is larger than the fds' cost.\n")
	p("`go test -run '^$' -bench BenchmarkUpgrade ./tableflip` times the same from the\n")
	p("`Upgrade` call, inside one process, with claimed and unclaimed fds.\n")
	plotFds(filepath.Join(imgDir, "fd-cost.png"), rep.fds)
}

// dash is d, or "-" when nothing was measured (no request answered).
func dash(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return ms(d).String()
}

// scrub replaces the run's temporary folder in msg, so that no path of
// this machine lands in the docs.
func (rep *report) scrub(msg string) string {
	if rep.tmp == "" {
		return msg
	}
	return strings.ReplaceAll(msg, rep.tmp, "$TMPDIR")
}
