package fxmodule

import (
	"os"
	"os/signal"
	"sync"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	_ "github.com/tableflip-go/tableflip/transport/tcp"
)

// No signal registration outlives the app: every channel fxmodule gives
// signal.Notify (the SIGHUP trigger, SIGTERM) is given to signal.Stop by the
// time the app has stopped. (signal.Notify itself has no way to list them.)
func TestNoSignalRegistrationOutlivesTheApp(t *testing.T) {
	var mu sync.Mutex
	live := map[chan<- os.Signal]bool{}
	notify = func(c chan<- os.Signal, sigs ...os.Signal) {
		mu.Lock()
		live[c] = true
		mu.Unlock()
		signal.Notify(c, sigs...)
	}
	stopNotify = func(c chan<- os.Signal) {
		mu.Lock()
		delete(live, c)
		mu.Unlock()
		signal.Stop(c)
	}
	defer func() { notify, stopNotify = signal.Notify, signal.Stop }()

	for i := 0; i < 2; i++ {
		app := fxtest.New(t, fx.NopLogger, Module, Listener("http", "tcp://127.0.0.1:0"))
		app.RequireStart()
		mu.Lock()
		n := len(live)
		mu.Unlock()
		if n != 2 {
			t.Fatalf("app %d running: %d signal registrations, want 2 (SIGHUP trigger, SIGTERM)", i, n)
		}
		app.RequireStop()
		mu.Lock()
		n = len(live)
		mu.Unlock()
		if n != 0 {
			t.Fatalf("app %d stopped: %d signal registrations left", i, n)
		}
	}
}
