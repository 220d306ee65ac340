package fxmodule

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// Module provides this process's *tableflip.Upgrader to an fx app, also as
// tableflip.Fds (what transports need), and runs this generation's life
// with the app's: Ready after the app's last OnStart hook, the drain and
// Stop before its first OnStop hook. List it anywhere among the options
// of fx.New; nothing else is needed (see the package documentation).
//
// The Upgrader is created with the app's *zap.Logger when the app has one
// and with the Config the app supplies, if any (see Params). Module provides
// nothing else: no logger, no listener (see Listener), no server (see
// ServeHTTP).
var Module = fx.Options(
	fx.Module("tableflip",
		fx.Provide(provide),
		// Create the Upgrader even in an app where nothing else asks for
		// it: the previous generation waits for its answer.
		fx.Invoke(func(p struct {
			fx.In
			Generation *generation
			Drainers   []Drainer `group:"tableflip.drainers"`
		}) {
			p.Generation.mu.Lock()
			p.Generation.drainers = p.Drainers
			p.Generation.mu.Unlock()
		}),
		// Invoke failures (a constructor that fails, such as a Listener on
		// an unknown scheme) reach the previous generation through it.
		fx.ErrorHook(errorHandler{}),
	),
	// At the root, so that they reach every module of the app: the
	// app's Lifecycle, to follow its OnStart and OnStop hooks, and its
	// event logger, so that no log line reports a signal that never came.
	fx.Decorate(trackLifecycle),
	fx.Decorate(EventLogger),
)

// Ready is no longer needed: Module readies the Upgrader after the app's
// last OnStart hook, wherever it is listed.
//
// Deprecated: remove it from the app's options; it does nothing.
var Ready = fx.Options()

// Params are what New takes from the fx graph.
type Params struct {
	fx.In

	Logger *zap.Logger `optional:"true"`
	Config Config      `optional:"true"`
}

// Config configures the Upgrader and the drain. Supply it with fx.Supply.
type Config struct {
	tableflip.Options
	// DrainTimeout bounds the drain of every Drainer when this generation
	// stops. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
}

// Result is what New provides.
type Result struct {
	fx.Out

	Upgrader *tableflip.Upgrader
	Fds      tableflip.Fds
}

// New creates the Upgrader as Module does, for use without fx or in a
// module of one's own. Options.Logger, when nil, is the graph's logger.
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

type provided struct {
	fx.Out

	Upgrader   *tableflip.Upgrader
	Fds        tableflip.Fds
	Generation *generation
}

func provide(p struct {
	fx.In
	Logger     *zap.Logger `optional:"true"`
	Config     Config      `optional:"true"`
	Lifecycle  fx.Lifecycle
	Shutdowner fx.Shutdowner
	Trigger    Trigger `optional:"true"`
}) (provided, error) {
	lc, ok := p.Lifecycle.(*lifecycle)
	if !ok {
		return provided{}, fmt.Errorf("fxmodule: the app's fx.Lifecycle is %T, not fxmodule's: is fx.Lifecycle decorated elsewhere?", p.Lifecycle)
	}
	r, err := New(Params{Logger: p.Logger, Config: p.Config})
	if err != nil {
		return provided{}, err
	}
	g := &generation{
		upg:        r.Upgrader,
		log:        r.Upgrader.Logger(),
		cfg:        p.Config,
		shutdowner: p.Shutdowner,
		trigger:    p.Trigger,
	}
	if g.trigger == nil {
		g.trigger = Signal(sighup)
	}
	g.upg.AddHooks(tableflip.Hooks{Done: func(pid int, err error) {
		if err == nil {
			g.upgraded.Store(true)
		}
	}})
	pending.add(g)
	lc.follow(g)
	// At least one hook, so that the lifecycle has a last OnStart.
	lc.Append(fx.Hook{})
	return provided{Upgrader: r.Upgrader, Fds: r.Upgrader, Generation: g}, nil
}

// pending holds the generations not yet ready, for fx.New's ErrorHook: a
// failure there has no lifecycle to go through.
var pending = &pendingGenerations{m: make(map[*generation]struct{})}

type pendingGenerations struct {
	mu sync.Mutex
	m  map[*generation]struct{}
}

func (p *pendingGenerations) add(g *generation) {
	p.mu.Lock()
	p.m[g] = struct{}{}
	p.mu.Unlock()
}

// remove reports whether g was pending.
func (p *pendingGenerations) remove(g *generation) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.m[g]
	delete(p.m, g)
	return ok
}

func (p *pendingGenerations) fail(err error) {
	p.mu.Lock()
	gs := make([]*generation, 0, len(p.m))
	for g := range p.m {
		gs = append(gs, g)
	}
	p.mu.Unlock()
	for _, g := range gs {
		g.fail(err)
	}
}

// errorHandler reports a failed fx.New (fx runs no hook then) to the
// previous generation.
type errorHandler struct{}

func (errorHandler) HandleError(err error) {
	pending.fail(fmt.Errorf("fxmodule: fx.New failed: %w", err))
}

// lifecycle is the app's fx.Lifecycle, decorated to know when the last
// OnStart hook has returned and when the first OnStop hook is called: fx
// has no event for either (its hooks run in the order they were appended,
// and a hook appended during Start does not run in it). Every hook of the
// app is appended through it, since Module decorates fx.Lifecycle at the
// root.
type lifecycle struct {
	fx.Lifecycle

	mu       sync.Mutex
	g        *generation
	total    int  // hooks appended before Start
	started  int  // of them, OnStart returned nil
	stopped  int  // of those, OnStop was called
	starting bool // Start has begun: later hooks do not run in it
	stopping sync.Once
}

func trackLifecycle(lc fx.Lifecycle) fx.Lifecycle { return &lifecycle{Lifecycle: lc} }

func (l *lifecycle) follow(g *generation) {
	l.mu.Lock()
	l.g = g
	l.mu.Unlock()
}

func (l *lifecycle) Append(h fx.Hook) {
	l.mu.Lock()
	if l.starting {
		l.mu.Unlock()
		l.Lifecycle.Append(h)
		return
	}
	l.total++
	l.mu.Unlock()
	onStart, onStop := h.OnStart, h.OnStop
	h.OnStart = func(ctx context.Context) error {
		l.mu.Lock()
		l.starting = true
		l.mu.Unlock()
		if onStart != nil {
			if err := onStart(ctx); err != nil {
				// fx stops only the hooks that started before this
				// one, maybe none: tell the previous generation now.
				if g := l.generation(); g != nil {
					g.setStartErr(err)
					g.fail(err)
				}
				return err
			}
		}
		l.mu.Lock()
		l.started++
		last := l.started == l.total
		g := l.g
		l.mu.Unlock()
		if last && g != nil {
			if err := g.start(); err != nil {
				l.mu.Lock()
				l.started-- // fx does not stop a hook whose OnStart failed
				l.mu.Unlock()
				g.fail(err)
				return err
			}
		}
		return nil
	}
	h.OnStop = func(ctx context.Context) error {
		// fx stops the hooks that started, last first: the first OnStop
		// is the moment to drain, while everything else still runs.
		var err error
		l.stopping.Do(func() {
			if g := l.generation(); g != nil {
				err = g.stop(ctx)
			}
		})
		if onStop != nil {
			err = errors.Join(err, onStop(ctx))
		}
		l.mu.Lock()
		l.stopped++
		done := l.stopped == l.started
		g := l.g
		l.mu.Unlock()
		if done && g != nil {
			g.finish() // the app has stopped: no signal handling outlives it
		}
		return err
	}
	l.Lifecycle.Append(h)
}

func (l *lifecycle) generation() *generation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.g
}
