package main

import (
	"os"
	"path/filepath"
	"testing"

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
