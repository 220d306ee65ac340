package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

// The three ways to replace a running server that every load is run
// against.
const (
	ours    = "tableflip-go"         // this project's examples
	anchor  = "cloudflare/tableflip" // v1.2.3, its documented pattern
	restart = "stop and start"       // no library: SIGTERM, then a new process
)

var impls = []string{ours, anchor, restart}

// scenario is one load, run against each implementation.
type scenario struct {
	name    string // file-name friendly
	title   string
	kind    clientKind
	clients int
	wrk     int // wrk -c; 0: the Go clients of kind
}

// wrkTimeout is wrk's --timeout (loadtest.StartWrk adds a second to its
// Timeout).
const wrkTimeout = 11 * time.Second

// upgradeRecord is one upgrade (or restart) as the driver saw it.
type upgradeRecord struct {
	at      time.Duration // since the run's start, when SIGHUP (SIGTERM) was sent
	latency time.Duration // until the pid file named the new generation
	exited  time.Duration // until the old generation had exited
}

// result is one scenario against one implementation.
type result struct {
	scenario scenario
	impl     string
	samples  []sample
	errs     map[string]int64
	first    []string
	dialed   int64 // QUIC: connections opened
	broken   int64 // QUIC: connections dropped after a failed request
	upgrades []upgradeRecord
	duration time.Duration
	wrk      *loadtest.WrkResult
	pids     int
	err      error // the run itself failed (not a client failure)

	// scale runs
	conns      int
	drain      drainCounts    // this project's HTTP servers: what their drains logged
	listen     listenCounters // the machine's listen queue overflows during the load
	rssIdle    int64          // KiB, before the load
	rssLoaded  int64          // KiB, with every connection open
	fdsLoaded  int
	drainTimes []time.Duration
}

// server starts and replaces one implementation's server.
type server struct {
	b       *binaries
	impl    string
	sc      scenario
	dir     string
	addr    string // host:port, or the socket path
	pidFile string
	logFile *os.File
	srv     *loadtest.Server
}

func (s *server) command() *exec.Cmd {
	var bin string
	var args []string
	switch {
	case s.impl == ours && s.sc.kind == quicEcho:
		bin, args = s.b.quic, []string{"-addr", s.addr}
	case s.impl == ours && s.sc.kind == udpEcho:
		bin, args = s.b.udp, []string{"-addr", s.addr, "-log", "off"}
	case s.impl == ours && s.sc.kind == httpsResume:
		bin, args = s.b.tls, []string{"-addr", s.addr, "-cert", s.b.cert, "-key", s.b.key, "-log", "off"}
	case s.impl == ours && s.sc.kind == unixNewConn:
		bin, args = s.b.http, []string{"-socket", s.addr, "-log", "json"}
	case s.impl == ours:
		bin, args = s.b.http, []string{"-addr", s.addr, "-log", "json"}
	default:
		bin = s.b.anchor
		switch s.sc.kind {
		case udpEcho:
			args = []string{"-mode", "udp", "-addr", s.addr}
		case quicEcho:
			args = []string{"-mode", "quic", "-addr", s.addr, "-cert", s.b.cert, "-key", s.b.key}
		case httpsResume:
			args = []string{"-mode", "tls", "-addr", s.addr, "-cert", s.b.cert, "-key", s.b.key}
		case unixNewConn:
			args = []string{"-socket", s.addr}
		default:
			args = []string{"-addr", s.addr}
		}
		if s.impl == restart {
			args = append(args, "-plain")
		}
	}
	cmd := exec.Command(bin, append(args, "-pidfile", s.pidFile)...)
	cmd.Stdout, cmd.Stderr = s.logFile, s.logFile
	return cmd
}

func (s *server) start(ctx context.Context) error {
	srv, err := loadtest.StartServer(ctx, s.command(), s.pidFile)
	if err != nil {
		return fmt.Errorf("%s: %w", s.impl, err)
	}
	s.srv = srv
	return nil
}

// replace upgrades the server (SIGHUP) or, for the plain server, stops it
// and starts a new one.
func (s *server) replace(ctx context.Context) (upgradeRecord, int, error) {
	if s.impl != restart {
		up, err := s.srv.Upgrade(ctx)
		if err != nil {
			return upgradeRecord{}, 0, err
		}
		if up.OldExit.Code != 0 {
			return upgradeRecord{}, 0, fmt.Errorf("old generation: %v", up.OldExit)
		}
		return upgradeRecord{latency: up.Latency, exited: up.Exited}, up.NewPID, nil
	}
	start := time.Now()
	if _, err := s.srv.Stop(ctx); err != nil {
		return upgradeRecord{}, 0, err
	}
	exited := time.Since(start)
	s.srv.Close()
	if err := s.start(ctx); err != nil {
		return upgradeRecord{}, 0, err
	}
	return upgradeRecord{latency: time.Since(start), exited: exited}, s.srv.PID(), nil
}

// upgrade replaces the server and records the upgrade in res, its time
// counted from start.
func (s *server) upgrade(ctx context.Context, start time.Time, res *result) (upgradeRecord, int, error) {
	at := time.Since(start)
	up, pid, err := s.replace(ctx)
	if err != nil {
		return up, 0, fmt.Errorf("upgrade %d: %w", len(res.upgrades)+1, err)
	}
	up.at = at
	res.upgrades = append(res.upgrades, up)
	return up, pid, nil
}

func (s *server) close() {
	if s.srv != nil {
		s.srv.Close()
	}
	s.logFile.Close()
}

// runLoad runs sc against impl: start, load, upgrades, stop.
func (b *binaries) runLoad(ctx context.Context, sc scenario, impl string, o options) (res result) {
	res = result{scenario: sc, impl: impl}
	dir, err := os.MkdirTemp(b.dir, sc.name+"-")
	if err != nil {
		res.err = err
		return res
	}
	s := &server{b: b, impl: impl, sc: sc, dir: dir, pidFile: filepath.Join(dir, "pid")}
	s.logFile, err = os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		s.close()
		if impl == ours {
			res.drain = readDrainCounts(s.logFile.Name())
		}
	}()
	if sc.kind == unixNewConn {
		s.addr = filepath.Join(dir, "http.sock")
	} else if s.addr, err = freePort(sc.kind == udpEcho || sc.kind == quicEcho); err != nil {
		res.err = err
		return res
	}
	if err := s.start(ctx); err != nil {
		res.err = err
		return res
	}
	if sc.wrk > 0 {
		return b.runWrk(ctx, s, res, o)
	}

	start := time.Now()
	rec := startClients(sc.kind, s.addr, sc.clients, start)
	stopped := false
	stopClients := func() {
		if !stopped {
			stopped = true
			res.samples = rec.stop()
			res.duration = time.Since(start)
			res.errs, res.first, res.pids = rec.errs, rec.first, len(rec.byPid)
			res.dialed, res.broken = rec.dialed, rec.broken
		}
	}
	defer stopClients()
	served := func(pid int) error {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return rec.waitServed(wctx, pid, 20)
	}
	if err := served(s.srv.PID()); err != nil {
		res.err = err
		return res
	}
	time.Sleep(o.interval) // steady state before the first upgrade
	for i := range o.upgrades {
		_, pid, err := s.upgrade(ctx, start, &res)
		if err != nil {
			res.err = err
			return res
		}
		if err := served(pid); err != nil {
			res.err = fmt.Errorf("upgrade %d: %w", i+1, err)
			return res
		}
		time.Sleep(o.interval) // each generation serves a while
	}
	stopClients() // before the server stops for good
	if _, err := s.srv.Stop(ctx); err != nil {
		res.err = err
	}
	return res
}

// runWrk runs wrk against the server started in s, with the upgrades; for
// a scale run it also measures the server's memory with every connection
// open and the old generation's drain.
func (b *binaries) runWrk(ctx context.Context, s *server, r0 result, o options) (res result) {
	res = r0
	sc := s.sc
	res.conns = sc.wrk
	res.rssIdle = rssKiB(s.srv.PID())
	listen0 := readListenCounters()
	start := time.Now()
	threads := 2
	w, err := loadtest.StartWrk(loadtest.WrkOptions{URL: "http://" + s.addr + "/", Connections: sc.wrk, Threads: threads, Timeout: wrkTimeout - time.Second})
	if err != nil {
		res.err = err
		return res
	}
	stopped := false
	stopWrk := func() {
		if stopped {
			return
		}
		stopped = true
		r, err := w.Stop()
		res.duration = time.Since(start)
		if err != nil && res.err == nil {
			res.err = err
		}
		res.wrk = &r
	}
	defer stopWrk()
	if sc.wrk >= 1000 {
		// Wait until the server holds every connection (bounded), and
		// has served on them a while.
		deadline := time.Now().Add(60 * time.Second)
		for openFds(s.srv.PID()) < sc.wrk && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(o.interval)
		res.fdsLoaded = openFds(s.srv.PID())
		res.rssLoaded = rssKiB(s.srv.PID())
	}
	time.Sleep(o.interval)
	for range o.scaleUpgrades(sc) {
		up, _, err := s.upgrade(ctx, start, &res)
		if err != nil {
			res.err = err
			return res
		}
		if s.impl == restart {
			res.drainTimes = append(res.drainTimes, up.exited) // SIGTERM to exit
		} else {
			res.drainTimes = append(res.drainTimes, up.exited-up.latency)
		}
		if sc.wrk >= 1000 {
			// wrk reconnects to the new generation (bounded wait).
			deadline := time.Now().Add(60 * time.Second)
			for openFds(s.srv.PID()) < sc.wrk*9/10 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
		time.Sleep(o.interval)
	}
	// Before wrk exits: its own exit resets the connections that have
	// answers it has not read.
	res.listen = readListenCounters().sub(listen0)
	stopWrk()
	if _, err := s.srv.Stop(ctx); err != nil && res.err == nil {
		res.err = err
	}
	return res
}
