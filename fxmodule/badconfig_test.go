package fxmodule_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/tableflip-go/tableflip/fxmodule"
	"github.com/tableflip-go/tableflip/tableflip"
)

// startErr builds and starts an app from opts, bounded by a start
// timeout that a passing test never reaches, and returns the start error.
// The app must fail: its error is what the test looks at.
func startErr(t *testing.T, opts ...fx.Option) error {
	t.Helper()
	app := fx.New(append([]fx.Option{fx.NopLogger, fx.StartTimeout(60 * time.Second)}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := app.Start(ctx)
	if err == nil {
		app.Stop(ctx)
		t.Fatal("app started")
	}
	if ctx.Err() != nil {
		t.Fatalf("start hung until its timeout: %v", err)
	}
	if app.Err() != nil && err.Error() != app.Err().Error() {
		t.Errorf("Start returned %v, fx.New failed with %v", err, app.Err())
	}
	return err
}

func TestBadConfig(t *testing.T) {
	byHandInInvoke := fx.Invoke(func(upg *tableflip.Upgrader) error { return upg.Ready() })
	byHandInHook := fx.Invoke(func(lc fx.Lifecycle, upg *tableflip.Upgrader) {
		lc.Append(fx.StartHook(upg.Ready))
	})
	for _, tc := range []struct {
		name string
		opts []fx.Option
		is   error    // the error wraps it, if set
		want []string // and says all of these
	}{{
		name: "two listeners with one name",
		opts: []fx.Option{
			fxmodule.Module,
			fxmodule.Listener("http", "tcp://127.0.0.1:0"),
			fxmodule.Listener("http", "tcp://127.0.0.1:0"),
			fx.Invoke(func(p struct {
				fx.In
				L any `name:"http" optional:"true"`
			}) {
			}),
		},
		want: []string{`name="http"`, "already provided"},
	}, {
		name: "unknown scheme",
		opts: []fx.Option{
			fxmodule.Module,
			fxmodule.Listener("http", "bogus://127.0.0.1:0"),
			fxmodule.ServeHTTP("http", newTestServer),
		},
		is:   tableflip.ErrUnknownTransport,
		want: []string{`fxmodule: listener "http"`, `unknown transport "bogus"`},
	}, {
		name: "ready by hand in an invoke",
		opts: []fx.Option{fxmodule.Module, byHandInInvoke},
		is:   tableflip.ErrAlreadyReady,
	}, {
		name: "ready by hand in an OnStart hook",
		opts: []fx.Option{fxmodule.Module, byHandInHook},
		is:   tableflip.ErrAlreadyReady,
		want: []string{"fxmodule: ready"},
	}, {
		name: "Module missing",
		opts: []fx.Option{fx.Invoke(func(*tableflip.Upgrader) {})},
		want: []string{"missing type", "*tableflip.Upgrader"},
	}, {
		name: "two triggers",
		opts: []fx.Option{fxmodule.Module, fxmodule.WithTrigger(fxmodule.NoTrigger), fxmodule.WithTrigger(fxmodule.NoTrigger)},
		want: []string{"fxmodule.Trigger", "already provided"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := startErr(t, tc.opts...)
			t.Logf("start error: %v", err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error does not wrap %v", tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q", w)
				}
			}
		})
	}
}
