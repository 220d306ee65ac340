package example

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// HandleSignals makes the signals drive upg: SIGHUP starts an upgrade to
// the binary on disk now (in the background; if it fails, the failure is
// logged as "upgrade failed, still serving" and this generation serves
// on), and SIGTERM or an interrupt stops upg for good, which ends an
// upgrade in flight and closes upg.Exit. The program waits for Exit, as
// it does for a successor, and drains. Once Exit is closed, signals are
// caught and ignored: the drain goes on.
//
// Call it before upg.Ready: Ready writes the PID file, and from then on
// anyone may send a signal; a SIGHUP with no handler kills the process.
//
// stop ends the handling (the signals' default actions apply again). It
// does not wait for an upgrade in flight: stopping upg ends that.
func HandleSignals(log *zap.Logger, upg tableflip.Interface) (stop func()) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case sig := <-signals:
				if sig != syscall.SIGHUP {
					upg.Stop()
					return
				}
				go upgrade(log, upg)
			case <-upg.Exit():
				return // draining: the signals wait until the process exits
			case <-done:
				return
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(signals)
			close(done)
			wg.Wait()
		})
	}
}

// upgrade starts the next generation; on failure this one keeps serving.
func upgrade(log *zap.Logger, upg tableflip.Interface) {
	if _, err := upg.Upgrade(context.Background()); err != nil {
		log.Error("upgrade failed, still serving", zap.Error(err))
	}
}
