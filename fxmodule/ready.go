package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Ready makes this generation ready once the app has started, and stops it
// when the app stops. List it last among the options of fx.New:
//
//	fx.New(
//		fxmodule.Module,
//		... // everything else
//		fxmodule.Ready,
//	)
//
// Ready appends the app's last lifecycle hook:
//
//   - OnStart calls the Upgrader's Ready, which closes the inherited files
//     nobody claimed, writes the PID file and tells the previous
//     generation to drain and exit. It starts the upgrade Trigger (SIGHUP
//     unless the app provides another, see WithTrigger) just before, and
//     makes the Upgrader's Exit shut the app down through fx.Shutdowner.
//     So do SIGINT and SIGTERM, from just before Ready: fx.App.Run catches
//     them only once Start has returned, and the PID file that tools signal
//     names this process from Ready on.
//   - OnStop, which runs first of all OnStop hooks, stops the trigger,
//     drains every server of ServeHTTP and every Drainer of DrainerGroup
//     at the same time, bounded by Config.DrainTimeout, and then stops the
//     Upgrader. The other OnStop hooks (closing databases, flushing logs)
//     run after it, while nothing serves any more.
//
// Why last, and why not inside Module: fx runs OnStart hooks in the order
// they were appended, and they are appended as constructors and invokes
// run. fx runs the invokes of every fx.Module (Module included) before the
// invokes of the root, and root invokes in the order of the options. So a
// hook that an fx.Module appends runs before the hooks of root invokes, and
// only an invoke listed last at the root is sure to append its hook after
// all of them. Appending the hook later, during Start, does not work either:
// fx's Lifecycle runs the hooks that were appended when Start began. Every
// hook appended while Ready's constructors run (servers, Drainers) comes
// before it too.
//
// Module checks the rest at start: an app without Ready fails to start with
// ErrNoReady, one with Ready twice fails with ErrReadyTwice, and one whose
// Upgrader was made ready by hand fails with ErrReadyByHand.
var Ready = fx.Invoke(registerReady)

type readyParams struct {
	fx.In

	App        *app
	Lifecycle  fx.Lifecycle
	Shutdowner fx.Shutdowner
	Drainers   []Drainer `group:"tableflip.drainers"`
	Trigger    Trigger   `optional:"true"`
}

func registerReady(p readyParams) error {
	a := p.App
	a.mu.Lock()
	twice := a.hasReady
	a.hasReady = true
	a.mu.Unlock()
	if twice {
		return ErrReadyTwice
	}
	g := &generation{app: a, shutdowner: p.Shutdowner, drainers: p.Drainers, trigger: p.Trigger}
	if g.trigger == nil {
		g.trigger = Signal(sighup)
	}
	p.Lifecycle.Append(fx.Hook{OnStart: g.start, OnStop: g.stop})
	return nil
}

// generation runs this generation between Ready and Stop.
type generation struct {
	*app
	shutdowner fx.Shutdowner
	drainers   []Drainer
	trigger    Trigger

	stopTrigger func()
	term        chan os.Signal
	done        chan struct{} // closed when stop begins
	wg          sync.WaitGroup
}

func (g *generation) start(context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	upgrade := func(ctx context.Context) error {
		// Whatever ctx the trigger passes, stopping the app ends the
		// upgrade.
		ctx, cancelUpgrade := context.WithCancel(ctx)
		defer cancelUpgrade()
		defer context.AfterFunc(runCtx, cancelUpgrade)()
		select {
		case <-ready:
		case <-ctx.Done():
			return fmt.Errorf("fxmodule: upgrade before this generation was ready: %w", context.Cause(ctx))
		}
		return g.upgrade(ctx)
	}
	// The trigger starts before Ready: a SIGHUP sent as soon as the PID
	// file names this process must find it listening. So must a SIGTERM:
	// fx.App.Run catches it only once Start has returned.
	stopTrigger := g.trigger.Start(upgrade)
	term := make(chan os.Signal, 1)
	signal.Notify(term, os.Interrupt, syscall.SIGTERM)
	if err := g.upg.Ready(); err != nil {
		signal.Stop(term)
		cancel()
		stopTrigger()
		if errors.Is(err, tableflip.ErrAlreadyReady) {
			err = fmt.Errorf("%w: %w", ErrReadyByHand, err)
		} else {
			err = fmt.Errorf("fxmodule: ready: %w", err)
		}
		g.setStartErr(err)
		return err
	}
	pending.remove(g.app)
	close(ready)
	g.stopTrigger = func() {
		cancel()
		stopTrigger()
	}
	g.done = make(chan struct{})
	g.term = term
	g.wg.Add(2)
	go g.watchExit()
	go g.watchTerm()
	return nil
}

// watchTerm shuts the app down on SIGINT or SIGTERM, as fx.App.Run does
// once it catches them itself.
func (g *generation) watchTerm() {
	defer g.wg.Done()
	select {
	case sig := <-g.term:
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
	if err := g.shutdowner.Shutdown(); err != nil {
		// fx keeps the signal for the next Wait; Run takes it.
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
		g.log.Warn("upgrade not started", zap.Error(err))
	case errors.Is(err, tableflip.ErrStopped):
		g.log.Info("upgrade cut short: this generation is stopping", zap.Error(err))
	default:
		g.log.Error("upgrade failed, this generation keeps serving",
			zap.Error(err), zap.Duration("duration", time.Since(start)))
	}
	return err
}

func (g *generation) stop(ctx context.Context) error {
	close(g.done)
	g.stopTrigger() // ends an upgrade in flight too
	g.wg.Wait()
	// fx.App.Stop catches SIGINT and SIGTERM until it returns.
	signal.Stop(g.term)

	timeout := g.cfg.DrainTimeout
	if timeout <= 0 {
		timeout = DefaultDrainTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	g.log.Info("draining", zap.Int("drainers", len(g.drainers)), zap.Duration("timeout", timeout))
	errs := make([]error, len(g.drainers))
	var wg sync.WaitGroup
	for i, d := range g.drainers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Drain(dctx); err != nil {
				errs[i] = fmt.Errorf("fxmodule: drain %T: %w", d, err)
			}
		}()
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
