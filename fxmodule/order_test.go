package fxmodule_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/tableflip-go/tableflip/fxmodule"
	"github.com/tableflip-go/tableflip/tableflip"
	_ "github.com/tableflip-go/tableflip/transport/tcp"
)

// recorder records lifecycle events in order, each with the Upgrader's
// state at that moment.
type recorder struct {
	mu      sync.Mutex
	events  []string
	tracked bool
	ready   atomic.Bool
}

// state is the Upgrader's state as the application sees it.
func (r *recorder) state(upg *tableflip.Upgrader) string {
	select {
	case <-upg.Exit():
		return "stopped"
	default:
	}
	if r.ready.Load() {
		return "ready"
	}
	return "initial"
}

func (r *recorder) add(upg *tableflip.Upgrader, event string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s(%s)", event, r.state(upg)))
}

// track follows upg's Ready, before any other Ready hook the test adds.
func (r *recorder) track(upg *tableflip.Upgrader) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.tracked {
		r.tracked = true
		upg.AddHooks(tableflip.Hooks{Ready: func() { r.ready.Store(true) }})
	}
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// hooks appends an OnStart and an OnStop hook that record name.
func (r *recorder) hooks(lc fx.Lifecycle, upg *tableflip.Upgrader, name string) {
	r.track(upg)
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error { r.add(upg, name+"-start"); return nil },
		OnStop:  func(context.Context) error { r.add(upg, name+"-stop"); return nil },
	})
}

type recDrainer struct {
	r   *recorder
	upg *tableflip.Upgrader
}

func (d recDrainer) Drain(context.Context) error { d.r.add(d.upg, "drain"); return nil }

type thing struct{}

// TestHookOrder checks the guarantee of fxmodule.Module, wherever it is
// listed: the Upgrader becomes ready after every other OnStart hook,
// wherever that hook was appended (a module's invoke, a constructor, a root
// invoke, a module listed later); when the app stops, the Drainers are drained first,
// while the Upgrader still runs, then the Upgrader stops, then the other
// OnStop hooks run.
func TestHookOrder(t *testing.T) {
	r := &recorder{}
	app := fxtest.New(t,
		fx.NopLogger,
		fxmodule.Module, // first: no ordering rule
		fx.Module("early", fx.Invoke(func(lc fx.Lifecycle, upg *tableflip.Upgrader) { r.hooks(lc, upg, "module") })),
		fx.Provide(func(lc fx.Lifecycle, upg *tableflip.Upgrader) *thing {
			r.hooks(lc, upg, "constructor")
			return &thing{}
		}),
		fx.Invoke(func(lc fx.Lifecycle, upg *tableflip.Upgrader, _ *thing) {
			upg.AddHooks(tableflip.Hooks{
				Ready:     func() { r.add(upg, "upgrader-ready") },
				FinalStop: func() { r.add(upg, "upgrader-final-stop") },
			})
			r.hooks(lc, upg, "root-invoke")
		}),
		fx.Provide(fxmodule.AsDrainer(func(upg *tableflip.Upgrader) recDrainer { return recDrainer{r, upg} })),
		fx.Invoke(func(lc fx.Lifecycle, upg *tableflip.Upgrader) { r.hooks(lc, upg, "last-root-invoke") }),
		fx.Module("late", fx.Invoke(func(lc fx.Lifecycle, upg *tableflip.Upgrader) { r.hooks(lc, upg, "late-module") })),
	)
	app.RequireStart()
	got := strings.Join(r.take(), " ")
	want := "module-start(initial) late-module-start(initial) constructor-start(initial) root-invoke-start(initial) last-root-invoke-start(initial) upgrader-ready(ready)"
	if got != want {
		t.Errorf("start order:\n got %s\nwant %s", got, want)
	}
	app.RequireStop()
	got = strings.Join(r.take(), " ")
	want = "drain(ready) upgrader-final-stop(stopped) last-root-invoke-stop(stopped) root-invoke-stop(stopped) constructor-stop(stopped) late-module-stop(stopped) module-stop(stopped)"
	if got != want {
		t.Errorf("stop order:\n got %s\nwant %s", got, want)
	}
}
