package fxmodule

import (
	"sync/atomic"

	"go.uber.org/fx/fxevent"
)

// EventLogger wraps an fx event logger for fxmodule. Module applies it to
// the app's event logger already (with fx.Decorate), so an app need not call
// it; calling it again changes nothing. Every event goes on to next, but
// one: when fxmodule shuts the app down because the next generation is
// ready, fx.App.Run logs a Stopping event for a SIGTERM that never came
// ("received signal" "TERMINATED"); fxmodule has logged the real reason,
// and that event is dropped.
func EventLogger(next fxevent.Logger) fxevent.Logger {
	if l, ok := next.(*eventLogger); ok {
		return l
	}
	return &eventLogger{next: next}
}

// selfShutdown is set when fxmodule, not a signal, shut the app down. There
// is one Upgrader, so one fxmodule app running, per process.
var selfShutdown atomic.Bool

type eventLogger struct{ next fxevent.Logger }

func (l *eventLogger) LogEvent(e fxevent.Event) {
	if _, ok := e.(*fxevent.Stopping); ok && selfShutdown.Swap(false) {
		return
	}
	l.next.LogEvent(e)
}
