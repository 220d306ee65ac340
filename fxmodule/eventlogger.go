package fxmodule

import (
	"fmt"

	"go.uber.org/fx/fxevent"
)

// EventLogger wraps the app's fx event logger so that, when this
// generation's fx app fails to start, the exact error reaches the previous
// generation: its Upgrade returns a *tableflip.ChildError whose Reason is
// that error, and it keeps serving. Every event goes on to next unchanged.
//
//	fx.WithLogger(func(log *zap.Logger) fxevent.Logger {
//		return fxmodule.EventLogger(&fxevent.ZapLogger{Logger: log})
//	}),
//
// fx tells the error of a failed start (an OnStart hook that failed or
// timed out) to its event logger and to the caller of Start, and to nothing
// else. Without EventLogger, the new generation reports ErrStartFailed
// instead, and its own log has the cause. A failure of fx.New itself (a
// constructor that fails) is reported exactly either way, through Module's
// fx.ErrorHook.
func EventLogger(next fxevent.Logger) fxevent.Logger {
	return &eventLogger{next: next}
}

type eventLogger struct{ next fxevent.Logger }

func (l *eventLogger) LogEvent(e fxevent.Event) {
	l.next.LogEvent(e)
	switch e := e.(type) {
	case *fxevent.RollingBack:
		// Sent before the OnStop hooks of the rollback run.
		pending.fail(fmt.Errorf("fxmodule: fx app start failed: %w", e.StartErr))
	case *fxevent.Started:
		if e.Err != nil {
			pending.fail(fmt.Errorf("fxmodule: fx app start failed: %w", e.Err))
		}
	}
}
