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
}

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
//     for serve to return. Signals that arrive from then on are ignored:
//     the drain goes on.
//
// Run returns drain's error, or serve's if serve returns a non-nil error,
// which makes Run drain and return at once if it happens before Exit.
// Adapt a serve whose error after a drain is expected (udp.Server.Serve's
// udp.ErrDrained) in the function given. The caller still calls upg.Stop,
// as it would without Run.
func Run(upg Upgrader, serve func() error, drain func(context.Context) error, opts RunOptions) error {
	log := logger(opts.Logger)
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	if err := upg.Ready(); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- serve() }()

	var (
		upgraded  chan error // non-nil while an upgrade runs
		serveErr  error
		serveDone bool
	)
wait:
	for {
		select {
		case sig := <-sigs:
			switch {
			case sig != syscall.SIGHUP:
				log.Info("stopping", zap.Stringer("signal", sig))
				upg.Stop() // Exit closes; an upgrade in flight ends
			case upgraded != nil:
				log.Info("upgrade in progress, signal coalesced into it", zap.Stringer("signal", sig))
			default:
				upgraded = make(chan error, 1)
				go func(ch chan<- error) {
					_, err := upg.Upgrade(context.Background())
					ch <- err
				}(upgraded)
			}
		case err := <-upgraded:
			upgraded = nil
			logUpgrade(log, err)
		case <-upg.Exit():
			break wait
		case err := <-served:
			serveDone, serveErr = true, err
			if err == nil {
				err = errors.New("returned before the drain")
			}
			serveErr = fmt.Errorf("drain: serve: %w", err)
			break wait
		}
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := drain(ctx)
	if !serveDone {
		select {
		case serveErr = <-served:
		case <-ctx.Done():
			serveErr = fmt.Errorf("drain: serve did not return after the drain: %w", ctx.Err())
		}
	}
	if upgraded != nil {
		// Exit is closed, so the upgrade has ended or is ending: a
		// successor that became ready closed it, and Stop ends one in
		// flight.
		logUpgrade(log, <-upgraded)
	}
	if err == nil {
		err = serveErr
	}
	if err != nil {
		return err
	}
	log.Info("drained", zap.Duration("duration", time.Since(start)))
	return nil
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
