package drain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// DefaultTimeout bounds the drain of Run when RunOptions.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Upgrader is the part of a *tableflip.Upgrader that Run drives.
type Upgrader interface {
	Ready() error
	Upgrade(ctx context.Context) (pid int, err error)
	Exit() <-chan struct{}
	Stop()
}

var _ Upgrader = (*tableflip.Upgrader)(nil)

// RunOptions configures Run. The zero value is ready to use.
type RunOptions struct {
	// Logger receives the signals handled, the upgrades that failed and
	// the end of the drain. Nil means no logging.
	Logger *zap.Logger
	// Timeout bounds the drain: once it has passed, drain's context
	// ends. Zero means DefaultTimeout.
	Timeout time.Duration
	// Resume, if set, lets this generation take the service back when
	// its successor dies after the handover while this generation still
	// runs (see tableflip.Upgrader.Resumed; upg must have that method).
	// Run then calls Resume, which returns the serve and drain of a new
	// server on the same sockets: it listens again under the same names,
	// which hands it new duplicates of the sockets the upgrader still
	// holds. Run serves with them as with the first pair, while the drain
	// of the first goes on. Nil means no take-back.
	Resume func() (serve func() error, drain func(context.Context) error, err error)
	// Linger is how long a generation that has handed over and drained
	// stays alive to take the service back, should its successor die
	// (with Resume). Zero means Run returns as soon as it has drained. A
	// SIGTERM or SIGINT ends the wait.
	Linger time.Duration
}

// resumer is the part of a *tableflip.Upgrader that a take-back needs.
type resumer interface{ Resumed() <-chan struct{} }

// Run is the life of a generation once it has created or inherited its
// sockets, for a server that has a Serve and a Drain, such as a *Server or
// a *udp.Server:
//
//  1. It handles SIGHUP, SIGTERM and SIGINT, before anything else: Ready
//     writes the PID file, and from then on anyone may send a signal; a
//     SIGHUP with no handler would kill the process.
//  2. It calls upg.Ready. If that fails, Run returns its error and serve is
//     never called: the generation accepted nothing, so the connections
//     waiting in the shared socket's backlog go to the previous
//     generation, which still serves.
//  3. It calls serve in a goroutine of its own.
//  4. SIGHUP starts an upgrade (upg.Upgrade) in the background. A failed
//     upgrade is logged at error level, and this generation serves on. A
//     SIGHUP that arrives while an upgrade runs is part of that upgrade: it
//     is logged at info level as coalesced, and starts nothing. SIGTERM and
//     SIGINT stop upg for good, which ends an upgrade in flight.
//  5. Once upg.Exit is closed (a successor is ready, or upg was stopped),
//     it calls drain with a context that ends after the timeout, then waits
//     for serve to return. A SIGHUP that arrives from then on is ignored:
//     the drain goes on. A SIGTERM or SIGINT stops upg, so that it no
//     longer takes the service back.
//  6. With RunOptions.Resume, if the successor dies during the drain (or
//     the Linger after it), Run serves again from step 3 with the pair
//     Resume returns, while the earlier drain finishes.
//
// Run returns drain's error, or serve's if serve returns a non-nil error,
// which makes Run drain and return at once if it happens before Exit.
// After a take-back, the errors of every drain are joined. Adapt a serve
// whose error after a drain is expected (udp.Server.Serve's
// udp.ErrDrained) in the function given. The caller still calls upg.Stop,
// as it would without Run.
func Run(upg Upgrader, serve func() error, drain func(context.Context) error, opts RunOptions) error {
	r := &runner{upg: upg, opts: opts, log: logger(opts.Logger), timeout: opts.Timeout}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if opts.Resume != nil {
		res, ok := upg.(resumer)
		if !ok {
			return errors.New("drain: RunOptions.Resume needs an Upgrader with a Resumed method, such as *tableflip.Upgrader")
		}
		res.Resumed() // turns the take-back on
		r.resumer = res
	}
	r.sigs = make(chan os.Signal, 1)
	signal.Notify(r.sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(r.sigs)

	if err := upg.Ready(); err != nil {
		return err
	}
	return r.run(serve, drain)
}

// runner is one Run.
type runner struct {
	upg      Upgrader
	resumer  resumer // nil without RunOptions.Resume
	opts     RunOptions
	log      *zap.Logger
	timeout  time.Duration
	sigs     chan os.Signal
	upgraded chan error // non-nil while an upgrade runs
	stopped  bool       // Run stopped upg on a signal
	ended    []chan error
}

func (r *runner) run(serve func() error, drain func(context.Context) error) error {
	for {
		served := make(chan error, 1)
		go func(serve func() error) { served <- serve() }(serve)
		serveErr := r.serve(served)
		var resumed <-chan struct{}
		if r.resumer != nil && serveErr == nil && !r.stopped {
			resumed = r.resumer.Resumed()
		}
		ended := make(chan error, 1)
		r.ended = append(r.ended, ended)
		go func(drain func(context.Context) error) { ended <- r.drainOne(drain, served, serveErr) }(drain)
		if !r.wait(ended, resumed) {
			return r.finish()
		}
		r.log.Error("the successor died after the handover: serving again")
		var err error
		if serve, drain, err = r.opts.Resume(); err != nil {
			err = fmt.Errorf("drain: resume: %w", err)
			r.log.Error("resume failed, stopping", zap.Error(err))
			r.upg.Stop()
			return errors.Join(err, r.finish())
		}
	}
}

// serve handles signals while this generation serves, until upg.Exit
// closes or serve returns. It returns serve's error if serve returned
// first.
func (r *runner) serve(served chan error) error {
	for {
		select {
		case sig := <-r.sigs:
			switch {
			case sig != syscall.SIGHUP:
				r.log.Info("stopping", zap.Stringer("signal", sig))
				r.stopped = true
				r.upg.Stop() // Exit closes; an upgrade in flight ends
			case r.upgraded != nil:
				r.log.Info("upgrade in progress, signal coalesced into it", zap.Stringer("signal", sig))
			default:
				r.upgraded = make(chan error, 1)
				go func(ch chan<- error) {
					_, err := r.upg.Upgrade(context.Background())
					ch <- err
				}(r.upgraded)
			}
		case err := <-r.upgraded:
			r.upgraded = nil
			logUpgrade(r.log, err)
		case <-r.upg.Exit():
			return nil
		case err := <-served:
			if err == nil {
				err = errors.New("returned before the drain")
			}
			return fmt.Errorf("drain: serve: %w", err)
		}
	}
}

// drainOne drains one server and waits for its serve to return, unless
// serve returned first (serveErr).
func (r *runner) drainOne(drain func(context.Context) error, served chan error, serveErr error) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	err := drain(ctx)
	if serveErr == nil {
		select {
		case serveErr = <-served:
		case <-ctx.Done():
			serveErr = fmt.Errorf("drain: serve did not return after the drain: %w", ctx.Err())
		}
	}
	if err == nil {
		err = serveErr
	}
	if err == nil {
		r.log.Info("drained", zap.Duration("duration", time.Since(start)))
	}
	return err
}

// wait handles signals and the end of an upgrade while this generation
// drains, and then lingers. It returns true when the successor has died
// and this generation must serve again.
func (r *runner) wait(ended chan error, resumed <-chan struct{}) bool {
	var linger <-chan time.Time
	for {
		select {
		case err := <-ended:
			ended <- err // for finish
			ended = nil
			if resumed == nil || r.opts.Linger <= 0 {
				return false
			}
			t := time.NewTimer(r.opts.Linger)
			defer t.Stop()
			linger = t.C
		case <-linger:
			return false
		case <-resumed:
			return true
		case err := <-r.upgraded:
			// Exit is closed, so the upgrade has ended: a successor
			// that became ready closed it, and Stop ends one in flight.
			r.upgraded = nil
			logUpgrade(r.log, err)
		case sig := <-r.sigs:
			if sig == syscall.SIGHUP {
				r.log.Info("draining, signal ignored", zap.Stringer("signal", sig))
				continue
			}
			r.log.Info("stopping", zap.Stringer("signal", sig))
			r.stopped = true
			resumed = nil
			r.upg.Stop()
			if ended == nil {
				return false
			}
		}
	}
}

// finish waits for every drain and returns their errors, joined.
func (r *runner) finish() error {
	if r.upgraded != nil {
		logUpgrade(r.log, <-r.upgraded)
	}
	var errs []error
	for _, ended := range r.ended {
		if err := <-ended; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// logUpgrade logs the end of an upgrade that a SIGHUP started. The core
// logs a successful one itself.
func logUpgrade(log *zap.Logger, err error) {
	switch {
	case err == nil:
	case errors.Is(err, tableflip.ErrUpgradeInProgress):
		// Someone else's upgrade (a direct call to Upgrade) is running.
		log.Info("upgrade in progress, signal coalesced into it")
	case errors.Is(err, tableflip.ErrStopped):
		log.Info("upgrade ended: stopping")
	default:
		log.Error("upgrade failed, still serving", zap.Error(err))
	}
}
