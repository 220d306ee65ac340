package fxmodule

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.uber.org/fx"
)

// sighup starts an upgrade by default. syscall.SIGHUP exists on every
// platform, Windows included, where tableflip itself is not supported.
var sighup os.Signal = syscall.SIGHUP

// notify and stopNotify are signal.Notify and signal.Stop; a test counts
// the registrations through them.
var (
	notify     = signal.Notify
	stopNotify = signal.Stop
)

// A Trigger decides when this generation upgrades.
//
// fxmodule calls Start once, after the app's last OnStart hook, just
// before the Upgrader's Ready: Start sets up what it watches (signal.Notify, a
// listener) and returns at once, running goroutines of its own if it needs
// them. They call upgrade each time an upgrade should start. upgrade blocks
// until the upgrade has ended (a call before the generation is ready waits
// for it), logs the result and returns it: nil when the next generation is
// ready (this one then drains and exits), an error when this generation
// keeps serving. Its ctx bounds the upgrade on top of the Upgrader's
// UpgradeTimeout; stopping the app ends it too.
//
// When the app stops, fxmodule calls stop, which must end the watching and
// return once the Trigger's goroutines have finished, and before the drain
// begins.
//
// The default trigger is Signal(syscall.SIGHUP). An app replaces it with
// WithTrigger or by providing a Trigger, and turns automatic upgrades off
// with WithTrigger(NoTrigger). An app may call Upgrade on the Upgrader
// itself as well, with any trigger.
type Trigger interface {
	Start(upgrade func(ctx context.Context) error) (stop func())
}

// TriggerFunc adapts a function to Trigger.
type TriggerFunc func(upgrade func(ctx context.Context) error) (stop func())

// Start calls f.
func (f TriggerFunc) Start(upgrade func(ctx context.Context) error) (stop func()) { return f(upgrade) }

// NoTrigger never upgrades.
var NoTrigger Trigger = TriggerFunc(func(func(context.Context) error) func() { return func() {} })

// WithTrigger replaces the default SIGHUP trigger with t. It provides t as
// the app's Trigger, so listing it twice, or next to another provided
// Trigger, is an fx error.
func WithTrigger(t Trigger) fx.Option {
	return fx.Provide(func() Trigger { return t })
}

// Signal upgrades each time the process receives one of sigs. Signals that
// arrive during an upgrade start one more upgrade after it, at most.
//
// Its stop function gives the signals back (signal.Stop). fxmodule calls
// it only once the app has stopped: a generation that drains must not die
// of a SIGHUP sent to every process of a service (the default action is to
// exit); during the drain, upgrade refuses at once. fxmodule starts the
// trigger before the Upgrader's Ready, which writes the PID file that tools
// send SIGHUP to.
func Signal(sigs ...os.Signal) Trigger {
	return signalTrigger(sigs)
}

type signalTrigger []os.Signal

func (sigs signalTrigger) Start(upgrade func(context.Context) error) (stop func()) {
	// The channel stays registered after stop, and full, so the signal
	// package drops what comes later.
	c := make(chan os.Signal, 1)
	notify(c, sigs...)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-c:
				upgrade(ctx)
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		stopNotify(c) // no registration outlives the app
	}
}
