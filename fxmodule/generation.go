package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// generation runs this process's generation with its fx app: Ready after
// the app's last OnStart hook, the servers only then, the drain and Stop at
// its first OnStop hook, and the signals from just before Ready until the
// app has stopped.
type generation struct {
	upg        *tableflip.Upgrader
	log        *zap.Logger
	cfg        Config
	shutdowner fx.Shutdowner
	trigger    Trigger
	upgraded   atomic.Bool // an upgrade succeeded: the next generation serves

	mu       sync.Mutex
	servers  []server  // started once Ready returned nil
	drainers []Drainer // of DrainerGroup, set at start
	startErr error     // why the app failed to start
	ready    bool
	draining bool

	cancelRun   context.CancelFunc // ends an upgrade in flight; later ones refuse
	stopTrigger func()
	stopTerm    func()
	finishOnce  sync.Once
	done        chan struct{} // closed when the drain begins
	wg          sync.WaitGroup
}

// server is what ServeHTTP registers: it serves once this generation is
// committed, never before.
type server interface {
	serve()
}

func (g *generation) addServer(s server) {
	g.mu.Lock()
	g.servers = append(g.servers, s)
	g.mu.Unlock()
}

func (g *generation) setStartErr(err error) {
	g.mu.Lock()
	if g.startErr == nil {
		g.startErr = err
	}
	g.mu.Unlock()
}

// start runs after the app's last OnStart hook returned nil.
func (g *generation) start() error {
	g.done = make(chan struct{})
	ready := make(chan struct{})
	runCtx, cancel := context.WithCancel(context.Background())
	upgrade := func(ctx context.Context) error {
		ctx, cancelUpgrade := context.WithCancel(ctx)
		defer cancelUpgrade()
		// Whatever ctx the trigger passes, the drain ends the upgrade.
		defer context.AfterFunc(runCtx, cancelUpgrade)()
		select {
		case <-ready:
		case <-ctx.Done():
			return fmt.Errorf("fxmodule: upgrade before this generation was ready: %w", context.Cause(ctx))
		}
		if runCtx.Err() != nil {
			g.log.Info("upgrade not started: this generation is stopping")
			return fmt.Errorf("fxmodule: upgrade: %w", tableflip.ErrStopped)
		}
		return g.upgrade(ctx)
	}
	// The trigger and SIGTERM are caught from just before Ready: from
	// Ready on, the PID file names this process, and fx.App.Run catches
	// SIGTERM only once Start has returned. Both stay caught until the
	// app has stopped (finish), so that a signal during the drain does not
	// kill the process.
	stopTrigger := g.trigger.Start(upgrade)
	term := make(chan os.Signal, 1)
	notify(term, os.Interrupt, syscall.SIGTERM)
	g.mu.Lock()
	g.cancelRun = cancel
	g.stopTrigger = func() { cancel(); stopTrigger() }
	g.stopTerm = func() { stopNotify(term) }
	g.mu.Unlock()

	if err := g.upg.Ready(); err != nil {
		err = fmt.Errorf("fxmodule: ready: %w", err)
		g.setStartErr(err)
		return err
	}
	pending.remove(g)
	g.mu.Lock()
	g.ready = true
	servers := g.servers
	g.mu.Unlock()
	// Committed: only now does this generation accept. Until here the
	// shared sockets' backlogs held the connections, and a failed Ready
	// left them to the previous generation.
	for _, s := range servers {
		s.serve()
	}
	close(ready)
	g.wg.Add(2)
	go g.watchExit()
	go g.watchTerm(term)
	return nil
}

// watchTerm shuts the app down on SIGINT or SIGTERM, as fx.App.Run does
// once it catches them itself.
func (g *generation) watchTerm(term chan os.Signal) {
	defer g.wg.Done()
	select {
	case sig := <-term:
		g.log.Info("shutting the fx app down", zap.Stringer("signal", sig))
		if err := g.shutdowner.Shutdown(); err != nil {
			g.log.Debug("fx shutdown signal not delivered yet", zap.Error(err))
		}
	case <-g.done:
	}
}

// watchExit shuts the app down when the Upgrader says this generation must
// exit: the next one is ready, or someone stopped the Upgrader.
func (g *generation) watchExit() {
	defer g.wg.Done()
	select {
	case <-g.upg.Exit():
	case <-g.done:
		return
	}
	reason := "the next generation is ready"
	if !g.upgraded.Load() {
		reason = "the Upgrader was stopped"
	}
	g.log.Info("shutting the fx app down", zap.String("reason", reason))
	// No signal came: the event logger must not say one did.
	selfShutdown.Store(true)
	if err := g.shutdowner.Shutdown(); err != nil {
		g.log.Debug("fx shutdown signal not delivered yet", zap.Error(err))
	}
}

// upgrade is what the trigger calls: one upgrade, its result logged.
func (g *generation) upgrade(ctx context.Context) error {
	start := time.Now()
	g.log.Info("upgrade triggered")
	pid, err := g.upg.Upgrade(ctx)
	switch {
	case err == nil:
		g.log.Info("upgrade done: the next generation serves, this one drains and exits",
			zap.Int("child_pid", pid), zap.Duration("duration", time.Since(start)))
	case errors.Is(err, tableflip.ErrUpgradeInProgress), errors.Is(err, tableflip.ErrUpgraded):
		g.log.Info("upgrade not started", zap.Error(err))
	case errors.Is(err, tableflip.ErrStopped):
		g.log.Info("upgrade cut short: this generation is stopping", zap.Error(err))
	default:
		g.log.Error("upgrade failed, this generation keeps serving",
			zap.Error(err), zap.Duration("duration", time.Since(start)))
	}
	return err
}

// stop runs at the app's first OnStop hook: on a generation that became
// ready, drain every server and Drainer at once, then stop the Upgrader;
// on one that did not (its app failed to start), tell the previous
// generation why.
func (g *generation) stop(ctx context.Context) error {
	g.mu.Lock()
	ready := g.ready
	g.draining = true
	startErr := g.startErr
	cancelRun := g.cancelRun
	g.mu.Unlock()
	if !ready {
		if startErr == nil {
			startErr = errors.New("fxmodule: the fx app stopped before it was ready")
		}
		g.fail(startErr)
		return nil
	}
	close(g.done)
	cancelRun() // ends an upgrade in flight; the signals stay caught until finish
	g.wg.Wait()

	timeout := g.cfg.DrainTimeout
	if timeout <= 0 {
		timeout = DefaultDrainTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	g.mu.Lock()
	drainers := g.drainers
	g.mu.Unlock()
	g.log.Info("draining", zap.Int("drainers", len(drainers)), zap.Duration("timeout", timeout))
	errs := make([]error, len(drainers))
	var wg sync.WaitGroup
	for i, d := range drainers {
		wg.Go(func() {
			if err := d.Drain(dctx); err != nil {
				errs[i] = fmt.Errorf("fxmodule: drain %T: %w", d, err)
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err != nil {
		g.log.Error("drain incomplete", zap.Error(err), zap.Duration("duration", time.Since(start)))
	} else {
		g.log.Info("drained", zap.Duration("duration", time.Since(start)))
	}
	g.upg.Stop()
	return err
}

// fail stops a generation that never became ready, telling the previous
// generation, if any, why.
func (g *generation) fail(err error) {
	if !pending.remove(g) {
		g.upg.Stop()
		return
	}
	if g.upg.HasParent() {
		g.log.Error("fx app failed to start, reporting to the previous generation", zap.Error(err))
	}
	g.upg.Fail(err)
	g.finish()
}

// finish ends the signal handling once the app has stopped.
func (g *generation) finish() {
	g.finishOnce.Do(func() {
		g.mu.Lock()
		stopTrigger, stopTerm := g.stopTrigger, g.stopTerm
		g.mu.Unlock()
		if stopTrigger != nil {
			stopTrigger()
		}
		if stopTerm != nil {
			stopTerm()
		}
	})
}
