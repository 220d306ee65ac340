package tableflipprom

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Results of an upgrade, the values of the "result" label.
const (
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
)

// Reasons of a failed upgrade, the values of the "reason" label (a
// successful upgrade has reason "none"). Reason maps an error to one.
const (
	ReasonNone        = "none"         // the upgrade succeeded
	ReasonChildFailed = "child_failed" // the child said why (Fail, or a failed New or Ready)
	ReasonChildExited = "child_exited" // the child exited before it was ready, without a reason
	ReasonChildKilled = "child_killed" // the child was killed by a signal before it was ready
	ReasonTimeout     = "timeout"      // the child was not ready before the upgrade timeout
	ReasonStopped     = "stopped"      // Stop was called during the upgrade
	ReasonCanceled    = "canceled"     // the context of Upgrade was canceled
	ReasonProtocol    = "protocol"     // the handoff failed: malformed input, a protocol version mismatch
	ReasonOther       = "other"        // anything else; the log has the error
)

// Reason returns the reason label for the error an upgrade ended with.
func Reason(err error) string {
	var ce *tableflip.ChildError
	switch {
	case err == nil:
		return ReasonNone
	case errors.Is(err, tableflip.ErrStopped):
		return ReasonStopped
	case errors.As(err, &ce):
		switch {
		case ce.TimedOut:
			return ReasonTimeout
		case ce.Reason != "":
			return ReasonChildFailed
		case errors.Is(err, context.DeadlineExceeded):
			return ReasonTimeout
		case errors.Is(err, context.Canceled):
			return ReasonCanceled
		case errors.Is(err, tableflip.ErrProtocol):
			return ReasonProtocol
		case ce.ExitStatus >= 0:
			return ReasonChildExited
		}
		return ReasonChildKilled
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, tableflip.ErrProtocol):
		return ReasonProtocol
	}
	return ReasonOther
}

// Bucket bounds of the duration histograms, in seconds: from a
// millisecond to two minutes. An upgrade takes tens of milliseconds to a
// few seconds; a drain lasts up to its deadline.
var (
	UpgradeBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	DrainBuckets   = []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
)

var (
	descGeneration = prometheus.NewDesc("tableflip_generation",
		"Generation of the serving process: 1 for a process started without a parent, one more at each upgrade.", nil, nil)
	descInProgress = prometheus.NewDesc("tableflip_upgrade_in_progress",
		"1 while an upgrade started by this generation is under way, else 0.", nil, nil)
	descUpgrades = prometheus.NewDesc("tableflip_upgrades_total",
		"Upgrades since the first generation, by result (succeeded, failed) and reason (none on success).", []string{"result", "reason"}, nil)
	descUpgradeDuration = prometheus.NewDesc("tableflip_upgrade_duration_seconds",
		"Duration of upgrades since the first generation: from the start of the upgrade until the child is ready (succeeded) or the upgrade is given up (failed).", []string{"result"}, nil)
	descDrainDuration = prometheus.NewDesc("tableflip_drain_duration_seconds",
		"Duration of the drains of the old generations, from Exit until they had answered everything in flight.", nil, nil)
	descInherited = prometheus.NewDesc("tableflip_inherited_files",
		"Files this generation claimed from its parent, by transport.", []string{"transport"}, nil)
	descCreated = prometheus.NewDesc("tableflip_created_files",
		"Files this generation created and passes on (a listener on a new address), by transport. Inherited files are passed on too: they are in tableflip_inherited_files.", []string{"transport"}, nil)
)

// Collector is a prometheus.Collector of one Upgrader's lifecycle. Get one
// from New, before Ready; Close it when the generation has drained.
type Collector struct {
	fds tableflip.Fds
	log *zap.Logger
	pid int

	removeHooks func()
	parent      *link // from the previous generation, nil for the first

	mu        sync.Mutex
	own       snapshot  // what this generation counted
	fromAbove snapshot  // the previous generation's latest counts
	born      time.Time // when the upgrade that started this child began, until it is ready
	upgrading time.Time // when this generation's upgrade under way began
	next      *link     // to the child of the upgrade under way, or to the successor
	inherited map[string]int
	created   map[string]string // file name -> transport, of the files passed with Pass
	closed    bool
}

var _ prometheus.Collector = (*Collector)(nil)

// New returns the Collector of the Upgrader whose Fds is fds (an
// *tableflip.Upgrader). Call it before any transport claims a file and
// before Ready: it registers hooks that must run before the others, and
// claims the counts the previous generation left for it. A parent whose
// counts cannot be read is logged and ignored: the counts then start from
// this generation.
func New(fds tableflip.Fds) (*Collector, error) {
	c := &Collector{
		fds:       fds,
		log:       fds.Logger(),
		pid:       os.Getpid(),
		own:       newSnapshot(),
		fromAbove: newSnapshot(),
		inherited: map[string]int{},
		created:   map[string]string{},
	}
	parent, first, err := inheritLink(fds)
	switch {
	case errors.Is(err, tableflip.ErrNotInherited):
	case err != nil:
		c.log.Warn("metrics: the previous generation's counts are lost", zap.Int("pid", c.pid), zap.Error(err))
	default:
		c.parent = parent
		c.fromAbove = first.Counts
		// This generation is the result of an upgrade that succeeds
		// when it is ready (see the Ready hook).
		c.born = first.Started.time()
		go c.readParent()
	}
	c.removeHooks = fds.AddHooks(tableflip.Hooks{
		Ready:   c.ready,
		Prepare: c.prepare,
		Done:    c.done,
	})
	return c, nil
}

// Fds returns fds (New's) wrapped so that the files transports claim and
// pass through it are counted. Give it to the transports instead of the
// Upgrader.
func (c *Collector) Fds() tableflip.Fds { return countingFds{Fds: c.fds, c: c} }

// ObserveDrain records the duration of this generation's drain, and sends
// it on to the next generation, which serves the metrics.
func (c *Collector) ObserveDrain(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.own.Drain.observe(d.Seconds())
	c.sendLocked()
}

// Close removes the hooks, ends the links to the previous and the next
// generation (after sending the last counts), and stops the goroutine that
// reads the previous generation's counts. Call it at the end, after
// ObserveDrain. It is idempotent.
func (c *Collector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	next := c.next
	c.next = nil
	c.mu.Unlock()
	c.removeHooks()
	if next != nil {
		next.close()
	}
	if c.parent != nil {
		c.parent.close()
		<-c.parent.done
	}
	return nil
}

// Describe sends the descriptions of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGeneration, descInProgress, descUpgrades,
		descUpgradeDuration, descDrainDuration, descInherited, descCreated} {
		ch <- d
	}
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	total := c.totalLocked()
	inProgress := 0.0
	if !c.upgrading.IsZero() {
		inProgress = 1
	}
	inherited := make(map[string]int, len(c.inherited))
	for tr, n := range c.inherited {
		inherited[tr] = n
	}
	created := map[string]int{}
	for _, tr := range c.created {
		created[tr]++
	}
	c.mu.Unlock()

	ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, float64(c.fds.Generation()))
	ch <- prometheus.MustNewConstMetric(descInProgress, prometheus.GaugeValue, inProgress)
	for _, k := range slices.Sorted(maps.Keys(total.Upgrades)) {
		result, reason := splitUpgradeKey(k)
		ch <- prometheus.MustNewConstMetric(descUpgrades, prometheus.CounterValue, float64(total.Upgrades[k]), result, reason)
	}
	for _, result := range []string{ResultSucceeded, ResultFailed} {
		ch <- total.histogram(result).metric(descUpgradeDuration, result)
	}
	ch <- total.Drain.metric(descDrainDuration)
	for tr, n := range inherited {
		ch <- prometheus.MustNewConstMetric(descInherited, prometheus.GaugeValue, float64(n), tr)
	}
	for tr, n := range created {
		ch <- prometheus.MustNewConstMetric(descCreated, prometheus.GaugeValue, float64(n), tr)
	}
}

func (c *Collector) totalLocked() snapshot {
	t := newSnapshot()
	t.add(c.fromAbove)
	t.add(c.own)
	return t
}

// ready: a child's upgrade has succeeded (its parent acknowledged it).
func (c *Collector) ready() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parent == nil {
		return
	}
	d := time.Duration(-1) // unknown
	if !c.born.IsZero() {
		d = time.Since(c.born)
	}
	c.own.countUpgrade(ResultSucceeded, ReasonNone, d)
	c.born = time.Time{}
}

// prepare starts an upgrade: it makes the link to the child and writes
// the counts so far into it, for the child to read before it is ready.
func (c *Collector) prepare(ctx context.Context, h *tableflip.Handoff) error {
	childEnd, err := c.startUpgrade()
	if err != nil {
		return err
	}
	defer childEnd.Close()
	if err := h.AddFile(companionTransport, companionKey, childEnd, nil); err != nil {
		c.mu.Lock()
		c.next.close()
		c.next = nil
		c.mu.Unlock()
		return fmt.Errorf("tableflipprom: %w", err)
	}
	return nil
}

// startUpgrade makes the link to the child, writes the counts so far into
// it, and returns the child's end.
func (c *Collector) startUpgrade() (*os.File, error) {
	l, childEnd, err := newLink()
	if err != nil {
		return nil, fmt.Errorf("tableflipprom: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.upgrading = time.Now()
	msg := message{Started: monotonicNow(), Counts: c.totalLocked()}
	if err := l.send(msg); err != nil {
		l.close()
		childEnd.Close()
		return nil, fmt.Errorf("tableflipprom: %w", err)
	}
	c.next = l
	return childEnd, nil
}

// done ends an upgrade. A failure is counted here; a success is counted
// by the child, which serves the metrics from now on, and the link to it
// is kept until this generation has drained.
func (c *Collector) done(pid int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	started := c.upgrading
	c.upgrading = time.Time{}
	if err == nil {
		return
	}
	d := time.Duration(-1) // unknown: an earlier Prepare hook failed before ours ran
	if !started.IsZero() {
		d = time.Since(started)
	}
	c.own.countUpgrade(ResultFailed, Reason(err), d)
	if c.next != nil {
		c.next.close()
		c.next = nil
	}
}

// sendLocked sends the counts to the successor, or to the child of the
// upgrade under way, if there is one. Each message holds every count so
// far but the child's own, so the child replaces the previous one.
func (c *Collector) sendLocked() {
	if c.next == nil {
		return
	}
	if err := c.next.send(message{Counts: c.totalLocked()}); err != nil {
		c.log.Warn("metrics: cannot send the counts to the next generation", zap.Int("pid", c.pid), zap.Error(err))
		c.next.close()
		c.next = nil
	}
}

// readParent keeps the previous generation's latest counts until it
// closes the link (it has exited) or Close does.
func (c *Collector) readParent() {
	defer close(c.parent.done)
	for {
		msg, err := c.parent.receive()
		if err != nil {
			if !c.parent.isClosed() && !errors.Is(err, errEOF) {
				c.log.Warn("metrics: the previous generation's counts cannot be read", zap.Int("pid", c.pid), zap.Error(err))
			}
			return
		}
		c.mu.Lock()
		c.fromAbove = msg.Counts
		c.sendLocked()
		c.mu.Unlock()
	}
}

// countingFds counts the files claimed and passed through it.
type countingFds struct {
	tableflip.Fds
	c *Collector
}

func (f countingFds) Inherit(transport, key string) (*os.File, []byte, error) {
	file, meta, err := f.Fds.Inherit(transport, key)
	if err == nil {
		f.c.mu.Lock()
		f.c.inherited[transport]++
		f.c.mu.Unlock()
	}
	return file, meta, err
}

func (f countingFds) Pass(transport, key string, conn syscall.Conn, meta []byte) error {
	err := f.Fds.Pass(transport, key, conn, meta)
	if err == nil {
		f.c.mu.Lock()
		f.c.created[transport+"\x00"+key] = transport
		f.c.mu.Unlock()
	}
	return err
}

func (f countingFds) Forget(transport, key string) {
	f.Fds.Forget(transport, key)
	f.c.mu.Lock()
	delete(f.c.created, transport+"\x00"+key)
	f.c.mu.Unlock()
}
