package fxmodule_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/tableflip-go/tableflip/fxmodule"
	"github.com/tableflip-go/tableflip/tableflip"
)

func newTestServer() *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid=%d\n", os.Getpid())
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
}

func get(t *testing.T, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServeHTTP serves on a named listener, and checks that stopping the
// app drains the server (a keep-alive connection is told to close) and
// closes the listening socket.
func TestServeHTTP(t *testing.T) {
	var ln net.Listener
	app := fxtest.New(t,
		fxmodule.Module,
		fxmodule.Listener("http", "tcp://127.0.0.1:0"),
		fxmodule.ServeHTTP("http", newTestServer),
		fx.Invoke(fx.Annotate(func(l net.Listener) { ln = l }, fx.ParamTags(`name:"http"`))),
	)
	app.RequireStart()
	addr := ln.Addr().String()
	if got, want := get(t, addr), fmt.Sprintf("pid=%d\n", os.Getpid()); got != want {
		t.Errorf("GET / = %q, want %q", got, want)
	}
	app.RequireStop()
	if c, err := net.DialTimeout("tcp", addr, 10*time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts after stop", addr)
	}
}

// TestExitShutsDown checks that the app shuts down through fx.Shutdowner
// when the Upgrader's Exit closes (here because the Upgrader is stopped by
// hand; after an upgrade it is the same channel).
func TestExitShutsDown(t *testing.T) {
	var upg *tableflip.Upgrader
	app := fxtest.New(t, fxmodule.Module, fx.Populate(&upg), fxmodule.WithTrigger(fxmodule.NoTrigger))
	app.RequireStart()
	wait := app.Wait()
	upg.Stop()
	select {
	case sig := <-wait:
		if sig.ExitCode != 0 {
			t.Errorf("exit code %d", sig.ExitCode)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no shutdown signal after Exit closed")
	}
	app.RequireStop()
}

// TestDrainTimeout checks that a Drainer that does not finish is cut at
// Config.DrainTimeout, the stop error says so, and the Upgrader stops.
func TestDrainTimeout(t *testing.T) {
	var upg *tableflip.Upgrader
	app := fxtest.New(t,
		fxmodule.Module,
		fx.Supply(fxmodule.Config{DrainTimeout: 50 * time.Millisecond}),
		fx.Provide(fxmodule.AsDrainer(func() fxmodule.DrainerFunc {
			return func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		})),
		fx.Populate(&upg),
	)
	app.RequireStart()
	err := app.Stop(t.Context())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stop error %v, want a drain deadline", err)
	}
	if err := upg.Ready(); !errors.Is(err, tableflip.ErrStopped) {
		t.Errorf("upgrader not stopped after stop: Ready returned %v", err)
	}
}
