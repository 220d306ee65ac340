package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
)

func TestReadDrainCounts(t *testing.T) {
	log := `{"level":"info","msg":"drain: started","conns":3}
{"level":"info","msg":"drain: done","closed_new_silent_past_grace":1,"closed_idle_past_grace":4,"waited_for_partial_requests":2}
not json "drain: done"
{"level":"info","msg":"drain: done","closed_new_silent_past_grace":0,"closed_idle_past_grace":3,"waited_for_partial_requests":0}
`
	path := filepath.Join(t.TempDir(), "server.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got := readDrainCounts(path)
	want := drainCounts{drains: 2, closedIdle: 7, closedNew: 1, partial: 2}
	if got != want {
		t.Errorf("readDrainCounts = %+v, want %+v", got, want)
	}
	if got := readDrainCounts(filepath.Join(t.TempDir(), "none")); got != (drainCounts{}) {
		t.Errorf("a missing log: %+v, want zero", got)
	}
}

func TestListenCountersReadable(t *testing.T) {
	if _, err := os.Stat("/proc/net/netstat"); err != nil {
		t.Skip("no /proc/net/netstat")
	}
	c := readListenCounters()
	if c.overflows < 0 || c.drops < c.overflows {
		t.Errorf("ListenDrops %d < ListenOverflows %d: misread (the kernel counts every overflow as a drop)", c.drops, c.overflows)
	}
	if d := c.sub(c); d != (listenCounters{}) {
		t.Errorf("c - c = %+v", d)
	}
}

func TestWrkFailedLeavesOutTimeouts(t *testing.T) {
	w := &loadtest.WrkResult{Requests: 100, Connect: 1, Read: 2, Write: 3, Timeout: 50, Non2xx: 4}
	if got := wrkFailed(w); got != 10 {
		t.Errorf("wrkFailed = %d, want 10 (timeouts are answered requests)", got)
	}
	r := result{wrk: w}
	if ok, failed := r.total(); ok != 100 || failed != 10 {
		t.Errorf("total = %d, %d; want 100, 10", ok, failed)
	}
}

func TestParseSoak(t *testing.T) {
	out := `upgrade  20 after   3.9s: pid 11 fds=18 threads=8 rss=9000kB goroutines=11; 4000 increments acknowledged
new-connection: 657 requests, 0 failures, 6 serving pids
keep-alive: 913 requests, 2 failures, 6 serving pids
increments: 1532 acknowledged, 0 failed
fds        first     20  last     18  min     17  max     20
threads    first      7  last      8  min      7  max      8
goroutines first     -1  last     -1  min     -1  max     -1
rss_kB     first   8740  last  10004  min   8740  max  11256
5 upgrades in 2.0s
`
	r := parseSoak(out)
	if r.upgrades != 5 || r.took != 2*time.Second || r.acked != 1532 {
		t.Errorf("upgrades %d, took %v, acked %d; want 5, 2s, 1532", r.upgrades, r.took, r.acked)
	}
	if r.requests["new-connection"] != [2]int64{657, 0} || r.requests["keep-alive"] != [2]int64{913, 2} {
		t.Errorf("requests %v", r.requests)
	}
	if r.ranges["fds"] != [4]int64{20, 18, 17, 20} || r.ranges["rss_kB"] != [4]int64{8740, 10004, 8740, 11256} {
		t.Errorf("ranges %v", r.ranges)
	}
}
