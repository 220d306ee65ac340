package tableflip

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// startSystemd is New's systemd integration: socket activation for the
// first generation, and the sd_notify hooks.
func (u *Upgrader) startSystemd() {
	if !u.HasParent() {
		if a := loadActivation(u.log); a != nil {
			u.do(func() { u.s.activated = a })
		}
	}
	if os.Getenv("NOTIFY_SOCKET") == "" || u.opts.DisableNotify {
		return
	}
	n := &notifier{u: u, send: sdNotify}
	u.AddHooks(Hooks{Ready: n.ready, Prepare: n.prepare, Done: n.done, FinalStop: n.finalStop, Resumed: n.resumed})
}

func sdNotify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// notifier speaks the sd_notify protocol for one generation, so that a
// service upgrades under Type=notify or Type=notify-reload with the default
// NotifyAccess=main:
//
//   - the first generation sends READY=1 when it becomes ready;
//   - a child never says READY=1 itself (the service manager would ignore
//     it: it is not the main process yet). Its parent, the main process,
//     sends MAINPID=<child> and READY=1 in one message when the child is
//     ready; from then on the child is the main process;
//   - RELOADING=1 with MONOTONIC_USEC when an upgrade starts, READY=1 when
//     it ends either way (the Type=notify-reload protocol);
//   - STOPPING=1 on the final stop;
//   - MAINPID=<self> and READY=1 when a generation takes the service back
//     from a successor that died (Upgrader.Resumed). This one needs
//     NotifyAccess=all: the sender is not the main process yet;
//   - STATUS= with every message, for systemctl status.
type notifier struct {
	u    *Upgrader
	send func(state string) error

	mu        sync.Mutex
	main      bool // this process is (or is about to be) the main process
	reloading bool // RELOADING=1 was sent for the upgrade in progress
	started   time.Time
}

func (n *notifier) notify(what string, lines ...string) {
	state := strings.Join(lines, "")
	if err := n.send(state); err != nil {
		n.u.log.Warn("sd_notify failed", zap.Int("pid", os.Getpid()), zap.String("message", what), zap.Error(err))
		return
	}
	n.u.log.Debug("sd_notify", zap.Int("pid", os.Getpid()), zap.String("message", what))
}

// status is a STATUS= line: one line of valid UTF-8 of bounded length, as
// the service manager wants it.
func status(format string, args ...any) string {
	s := fmt.Sprintf(format, args...)
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = strings.ToValidUTF8(s[:1021], "") + "..."
	}
	return "STATUS=" + s + "\n"
}

func (n *notifier) self() string {
	return fmt.Sprintf("generation %d (pid %d)", n.u.generation, os.Getpid())
}

func (n *notifier) ready() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.main = true
	if n.u.HasParent() {
		// The parent makes us the main process with MAINPID= and says
		// READY=1 for us; anything we sent now would be refused.
		return
	}
	n.notify("ready", "READY=1\n", status("%s ready", n.self()))
}

func (n *notifier) prepare(ctx context.Context, h *Handoff) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reloading, n.started = true, time.Now()
	n.notify("reloading", "RELOADING=1\n", daemon.SdNotifyMonotonicUsec(),
		status("%s upgrading to generation %d", n.self(), h.Generation()))
	return nil
}

func (n *notifier) done(pid int, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	head := "READY=1\n"
	if !n.reloading {
		// The upgrade ended before the Prepare hooks ran: start and end
		// the reload in one message, which systemd takes as such.
		head = "RELOADING=1\n" + daemon.SdNotifyMonotonicUsec() + head
	}
	took := time.Since(n.started).Round(time.Millisecond)
	n.reloading = false
	if err != nil {
		n.notify("upgrade failed", head, status("%s ready; upgrade to generation %d failed: %v",
			n.self(), n.u.generation+1, err))
		return
	}
	n.main = false
	n.notify("upgraded", fmt.Sprintf("MAINPID=%d\n", pid), head,
		status("generation %d (pid %d) ready; upgraded from pid %d in %v",
			n.u.generation+1, pid, os.Getpid(), took))
}

func (n *notifier) resumed(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.main = true
	n.notify("taken back", fmt.Sprintf("MAINPID=%d\n", os.Getpid()), "READY=1\n",
		status("%s serving again: %v", n.self(), err))
}

func (n *notifier) finalStop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.main && n.u.HasParent() {
		// A child that never became ready is not the main process.
		return
	}
	n.notify("stopping", "STOPPING=1\n", status("%s stopping", n.self()))
}
