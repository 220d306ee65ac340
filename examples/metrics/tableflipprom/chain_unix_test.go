//go:build unix

package tableflipprom

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// chainFds stands in for one generation's Upgrader in TestCountsFollowTheChain:
// it holds the companion file the previous generation left, and the hooks.
type chainFds struct {
	gen     int
	parent  *os.File
	hooks   tableflip.Hooks
	claimed bool
}

func (f *chainFds) Inherit(transport, key string) (*os.File, []byte, error) {
	if f.parent == nil || f.claimed || transport != companionTransport || key != companionKey {
		return nil, nil, fmt.Errorf("%w: %s %q", tableflip.ErrNotInherited, transport, key)
	}
	f.claimed = true
	return f.parent, nil, nil
}
func (f *chainFds) Pass(string, string, syscall.Conn, []byte) error { return nil }
func (f *chainFds) Forget(string, string)                           {}
func (f *chainFds) Inherited(string) []string                       { return nil }
func (f *chainFds) AddHooks(h tableflip.Hooks) func()               { f.hooks = h; return func() {} }
func (f *chainFds) Generation() int                                 { return f.gen }
func (f *chainFds) Logger() *zap.Logger                             { return zap.NewNop() }

// TestCountsFollowTheChain drives the hooks of three generations by hand
// (a unit test of the forwarding; the real upgrades are in examples/metrics)
// in the order the core runs them, and checks that generation 1's drain,
// which ends after generation 3 exists, reaches generation 3 through 2.
func TestCountsFollowTheChain(t *testing.T) {
	next := func(parent *Collector, gen int) *Collector {
		t.Helper()
		var childEnd *os.File
		if parent != nil {
			var err error
			if childEnd, err = parent.startUpgrade(); err != nil {
				t.Fatal(err)
			}
		}
		c, err := New(&chainFds{gen: gen, parent: childEnd})
		if err != nil {
			t.Fatal(err)
		}
		c.fds.(*chainFds).hooks.Ready() // acknowledged
		if parent != nil {
			parent.done(4242, nil)
		}
		return c
	}
	g1 := next(nil, 1)
	g1.done(0, &tableflip.ChildError{Pid: 4241, ExitStatus: 1}) // a failed upgrade first
	g2 := next(g1, 2)
	g3 := next(g2, 3)
	defer g3.Close()

	g1.ObserveDrain(2 * time.Second)
	g1.Close()
	waitTotals(t, g3, func(s snapshot) bool { return s.Drain.Sum == 2 })
	g2.ObserveDrain(time.Second)
	g2.Close()
	s := waitTotals(t, g3, func(s snapshot) bool { return s.Drain.Sum == 3 })
	if n := s.Upgrades[upgradeKey(ResultSucceeded, ReasonNone)]; n != 2 {
		t.Errorf("generation 3 counts %d successful upgrades, want 2", n)
	}
	if n := s.Upgrades[upgradeKey(ResultFailed, ReasonChildExited)]; n != 1 {
		t.Errorf("generation 3 counts %d failed upgrades, want 1", n)
	}
	if n := s.histogram(ResultSucceeded).Counts; sum(n) != 2 {
		t.Errorf("generation 3's upgrade durations: %v, want 2", n)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g3)
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}

func sum(n []uint64) (s uint64) {
	for _, v := range n {
		s += v
	}
	return s
}

// waitTotals waits until c's totals satisfy ok: the counts of the
// generations before it come in on their own goroutines.
func waitTotals(t *testing.T, c *Collector, ok func(snapshot) bool) snapshot {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		s := c.totalLocked()
		c.mu.Unlock()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("totals %+v (drain %+v)", s, s.Drain)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
