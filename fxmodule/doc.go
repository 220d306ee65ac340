// Package fxmodule gives go.uber.org/fx apps zero-downtime upgrades: on
// SIGHUP (or `systemctl reload`) a new generation of the program starts,
// inherits the listening sockets, becomes ready, and the old one drains
// without failing a request and exits.
//
// # Use
//
//	fx.New(
//		fx.Provide(zap.NewProduction),
//		fx.WithLogger(func(log *zap.Logger) fxevent.Logger {
//			return fxmodule.EventLogger(&fxevent.ZapLogger{Logger: log})
//		}),
//		fxmodule.Module,                                // the Upgrader
//		fxmodule.Listener("http", "tcp://:8080"),       // net.Listener `name:"http"`
//		fxmodule.ServeHTTP("http", newServer),          // served, then drained
//		fx.Provide(fxmodule.AsDrainer(newWorker)),      // any other server or worker
//		fxmodule.Ready,                                 // last
//	).Run()
//
// and import the transports the addresses use, such as
// github.com/tableflip-go/tableflip/transport/tcp.
//
// # What happens
//
// Module provides the process's *tableflip.Upgrader (also as
// tableflip.Fds and tableflip.Interface), made with the app's *zap.Logger
// if it has one and the Config it supplies, if any. Listener and PacketConn
// open sockets in their constructors, while fx.New runs, so every socket
// the previous generation passed is claimed before Ready.
//
// Ready, the last option, appends the last OnStart hook. It calls the
// Upgrader's Ready after every other OnStart hook has run: servers serve,
// caches are warm, and only then is the previous generation told to drain
// and exit. If any OnStart hook fails, Ready never runs, fx rolls back, and
// the new generation reports the error to the old one, whose Upgrade
// returns it while it keeps serving. Ready's OnStop hook is the first to
// run when the app stops: it drains every server of ServeHTTP and every
// Drainer at once, bounded by Config.DrainTimeout, then stops the
// Upgrader; the app's other OnStop hooks run after it.
//
// The Upgrader's Exit shuts the app down through fx.Shutdowner, so after a
// successful upgrade fx.App.Run returns and the old generation exits 0.
// SIGHUP starts an upgrade (see Trigger to replace or turn it off), and
// every upgrade's result is logged.
//
// # Without fx
//
// New, NewListener and NewPacketConn are plain functions. Without fx the
// program calls Ready, waits for Exit, drains and calls Stop itself; see
// examples/http.
//
// # Windows
//
// The package compiles everywhere, but tableflip.New returns
// tableflip.ErrNotSupported on Windows, so an app using Module fails to
// start there.
package fxmodule
