// Package example is the plumbing the example programs (examples/...)
// share, so that each of them shows only what a reader came for: the -log
// flag, the logger it asks for and the exit status (Run), and the signals
// that drive a generation (HandleSignals).
//
// What a program using tableflip must do itself stays in each example:
// tableflip.New, the listeners, Ready, waiting for Exit, and the drain.
// examples/http spells out the signal handling too, since the README
// quotes it as the whole program; the other examples share it here:
//
//	logFormat := example.LogFlag(fs)
//	if err := fs.Parse(args); err != nil {
//		return 2
//	}
//	return example.Run("udp", *logFormat, func(log *zap.Logger) error {
//		return serve(log, *addr, *pidFile)
//	})
//
// and in serve:
//
//	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log})
//	...
//	stopSignals := example.HandleSignals(log, upg) // before Ready
//	defer stopSignals()
//	if err := upg.Ready(); err != nil {
//		return err
//	}
//	<-upg.Exit() // the next generation is ready, or SIGTERM
//
// The package is internal: a program of your own copies what it needs.
package example
