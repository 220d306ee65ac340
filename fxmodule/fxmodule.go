package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// DefaultDrainTimeout bounds the drain when Config.DrainTimeout is zero. It
// is below fx's default stop timeout (fx.DefaultTimeout, 15s), so that the
// Upgrader is still stopped in time when a drain runs out.
const DefaultDrainTimeout = 10 * time.Second

// DrainerGroup is the fx value group whose Drainers are drained when this
// generation stops. Put a value in it with AsDrainer, or with the result tag
// `group:"tableflip.drainers"`.
const DrainerGroup = "tableflip.drainers"

var (
	// ErrNoReady is the start error of an app that has Module but not
	// Ready among its options: it would never tell the previous
	// generation that it serves.
	ErrNoReady = errors.New("fxmodule: fxmodule.Ready is not among the app's options (add it as the last option of fx.New)")
	// ErrReadyTwice is the error of an app that lists Ready more than once.
	ErrReadyTwice = errors.New("fxmodule: fxmodule.Ready is listed more than once")
	// ErrReadyByHand is wrapped by the start error of an app whose
	// Upgrader was made ready by a call to Ready outside fxmodule: that
	// call told the previous generation to exit before every OnStart hook
	// had run.
	ErrReadyByHand = errors.New("fxmodule: the Upgrader was made ready by hand (in an fx app, fxmodule.Ready calls Ready after every other OnStart hook; remove the call)")
	// ErrStartFailed is what a new generation reports to its parent when
	// its fx app failed to start and the cause is unknown to fxmodule. Wrap
	// the app's fx event logger with EventLogger to report the cause
	// itself.
	ErrStartFailed = errors.New("fxmodule: the fx app failed to start and rolled back (its log has the cause; wrap the fx event logger with fxmodule.EventLogger to report it here)")
)

// Module provides this process's *tableflip.Upgrader to an fx app, also as
// tableflip.Fds (what transports need) and tableflip.Interface. The
// Upgrader is created with the app's *zap.Logger when the app has one and
// with the Config the app supplies, if any (see Params). Module provides
// nothing else: no logger, no listener (see Listener), no server (see
// ServeHTTP).
//
// An app that uses Module must also list Ready, last: see Ready for why and
// what it does.
var Module = fx.Module("tableflip",
	fx.Provide(provide),
	// Create the Upgrader even in an app where nothing else asks for it,
	// so that its first hook checks the app at start (ErrNoReady).
	fx.Invoke(func(*app) {}),
	// Invoke failures (a constructor that fails, such as a Listener on an
	// unknown scheme) end fx.New; fx then runs no hook at all, so this is
	// where a new generation reports them to its parent.
	fx.ErrorHook(newErrorHandler()),
)

// Params are what New takes: every field is optional.
type Params struct {
	fx.In

	// Logger is the app's logger. fxmodule uses it when the app provides
	// one; it never provides one itself. Nil means no logging, unless
	// Config.Options.Logger is set, which takes precedence.
	Logger *zap.Logger `optional:"true"`
	// Config is supplied by the app, for example with
	// fx.Supply(fxmodule.Config{...}). The zero value is usable.
	Config Config `optional:"true"`
}

// Config configures the Upgrader and the way this generation stops.
type Config struct {
	// Options are passed to tableflip.New: PID file, upgrade timeout, kill
	// grace, application state to hand over, next version. Options.Logger,
	// if set, is used instead of the app's *zap.Logger.
	tableflip.Options
	// DrainTimeout bounds the drain of the HTTP servers (ServeHTTP) and
	// Drainers when this generation stops. Zero means DefaultDrainTimeout.
	// The OnStop context, which fx bounds with fx.StopTimeout, bounds it
	// too: raise both together.
	DrainTimeout time.Duration
}

// Result is what New returns: the same Upgrader under the three types
// that code depends on.
type Result struct {
	fx.Out

	Upgrader *tableflip.Upgrader
	Fds      tableflip.Fds
}

// New creates this process's Upgrader from p. It is the constructor that
// Module provides, and it works without fx:
//
//	r, err := fxmodule.New(fxmodule.Params{Logger: log})
//	upg := r.Upgrader
//
// Without fx, the caller owns the Upgrader's life: Ready, Exit, Stop.
func New(p Params) (Result, error) {
	opts := p.Config.Options
	if opts.Logger == nil {
		opts.Logger = p.Logger
	}
	upg, err := tableflip.New(opts)
	if err != nil {
		return Result{}, fmt.Errorf("fxmodule: %w", err)
	}
	return Result{Upgrader: upg, Fds: upg}, nil
}

// provided is what Module provides: Result and the app's own state.
type provided struct {
	fx.Out

	Upgrader *tableflip.Upgrader
	Fds      tableflip.Fds
	App      *app
}

// provide is New plus the first of fxmodule's lifecycle hooks.
func provide(p Params, lc fx.Lifecycle) (provided, error) {
	r, err := New(p)
	if err != nil {
		return provided{}, err
	}
	a := &app{upg: r.Upgrader, log: r.Upgrader.Logger(), cfg: p.Config}
	a.upg.AddHooks(tableflip.Hooks{
		Ready: func() { a.ready.Store(true) },
		Done: func(pid int, err error) {
			if err == nil {
				a.upgraded.Store(true)
			}
		},
	})
	pending.add(a)
	lc.Append(fx.Hook{OnStart: a.checkStart, OnStop: a.stopEarly})
	return provided{Upgrader: r.Upgrader, Fds: r.Upgrader, App: a}, nil
}

// app is the state fxmodule keeps for one fx app: one generation.
type app struct {
	upg *tableflip.Upgrader
	// ready and upgraded are set by the Upgrader's hooks.
	ready, upgraded atomic.Bool
	log             *zap.Logger
	cfg             Config

	mu       sync.Mutex
	hasReady bool  // the Ready invoke ran
	startErr error // why the app failed to start, when fxmodule knows
}

// checkStart is the OnStart hook appended when the Upgrader is created,
// before the hooks of everything that depends on it.
func (a *app) checkStart(context.Context) error {
	a.mu.Lock()
	hasReady := a.hasReady
	a.mu.Unlock()
	// On a failure here, fx runs no OnStop of ours: stop the Upgrader now,
	// so that the process may make another.
	if !hasReady {
		a.setStartErr(ErrNoReady)
		a.fail(ErrNoReady)
		return ErrNoReady
	}
	if a.ready.Load() {
		err := fmt.Errorf("%w (ready before the app started)", ErrReadyByHand)
		a.setStartErr(err)
		a.fail(err)
		return err
	}
	return nil
}

// stopEarly is the OnStop hook that pairs with checkStart: it runs last.
// After a normal stop it finds the Upgrader stopped already. When the start
// failed and fx rolls back, it reports the failure to the previous
// generation, whose Upgrade then returns it, and stops the Upgrader.
func (a *app) stopEarly(context.Context) error {
	if !a.ready.Load() {
		a.mu.Lock()
		err := a.startErr
		a.mu.Unlock()
		if err == nil {
			err = ErrStartFailed
		}
		a.fail(err)
		return nil
	}
	pending.remove(a)
	a.upg.Stop()
	return nil
}

func (a *app) setStartErr(err error) {
	a.mu.Lock()
	if a.startErr == nil {
		a.startErr = err
	}
	a.mu.Unlock()
}

// fail reports err to the previous generation (if this one has a parent
// and is not ready yet) and stops the Upgrader.
func (a *app) fail(err error) {
	if !pending.remove(a) {
		a.upg.Stop()
		return
	}
	if a.upg.HasParent() && !a.ready.Load() {
		a.log.Error("fx app failed to start, reporting to the previous generation", zap.Error(err))
	}
	a.upg.Fail(err)
}

// pending holds the apps of this process whose Upgrader exists but is not
// ready yet. fx reports a failed fx.New or a failed start to an error hook
// or an event logger, which get the error but not the app; since a process
// has one Upgrader (tableflip.New gives the parent's handoff to the first
// one only), failing every pending app is failing the right one.
var pending = &pendingApps{m: make(map[*app]struct{})}

type pendingApps struct {
	mu sync.Mutex
	m  map[*app]struct{}
}

func (p *pendingApps) add(a *app) {
	p.mu.Lock()
	p.m[a] = struct{}{}
	p.mu.Unlock()
}

// remove reports whether a was pending.
func (p *pendingApps) remove(a *app) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.m[a]
	delete(p.m, a)
	return ok
}

// fail fails every pending app with err.
func (p *pendingApps) fail(err error) {
	p.mu.Lock()
	apps := make([]*app, 0, len(p.m))
	for a := range p.m {
		apps = append(apps, a)
	}
	p.mu.Unlock()
	for _, a := range apps {
		a.setStartErr(err)
		a.fail(err)
	}
}

// errorHandler is the fx.ErrorHook of Module.
type errorHandler struct{}

func newErrorHandler() fx.ErrorHandler { return errorHandler{} }

func (errorHandler) HandleError(err error) {
	pending.fail(fmt.Errorf("fxmodule: fx.New failed: %w", err))
}
