// Package fxmodule gives go.uber.org/fx apps zero-downtime upgrades: on
// SIGHUP (or `systemctl reload`) a new generation of the program starts,
// inherits the listening sockets, becomes ready, and the old one drains
// without failing a request and exits.
//
// # Use
//
//	fx.New(
//		fx.Provide(zap.NewProduction),
//		fx.WithLogger(func(log *zap.Logger) fxevent.Logger { return &fxevent.ZapLogger{Logger: log} }),
//		fxmodule.Module,                                // the Upgrader, anywhere in the list
//		fxmodule.Listener("http", "tcp://:8080"),       // net.Listener `name:"http"`
//		fxmodule.ServeHTTP("http", newServer),          // served after Ready, then drained
//		fx.Provide(fxmodule.AsDrainer(newWorker)),      // any other server or worker
//	).Run()
//
// and import the transports the addresses use, such as
// github.com/tableflip-go/tableflip/transport/tcp. List Module at the root
// of fx.New, not inside an fx.Module of the app's: it decorates the app's
// fx.Lifecycle there, for every module.
//
// # What happens
//
// Module provides the process's *tableflip.Upgrader (also as
// tableflip.Fds), made with the app's *zap.Logger if it has one and the
// Config it supplies, if any. Listener and PacketConn open sockets in their
// constructors, while fx.New runs, so every socket the previous generation
// passed is claimed before Ready.
//
// fx has no event for "every OnStart hook has run", so Module decorates the
// app's fx.Lifecycle: it counts the hooks appended before Start, and when
// the last one's OnStart has returned nil, it calls the Upgrader's Ready,
// inside that hook. Only then do the servers of ServeHTTP start to accept:
// a generation accepts nothing before the previous one has committed to it
// (connections wait in the shared socket's backlog meanwhile, and a
// generation that fails at Ready leaves them to its parent). An app's own
// servers follow the same rule by serving from a tableflip.Hooks Ready hook.
// If any OnStart hook fails, Ready never runs, fx rolls back, and the new
// generation reports that hook's error to the old one, whose Upgrade
// returns it while it keeps serving.
//
// When the app stops, the first OnStop hook fx calls (the last appended)
// first drains every server of ServeHTTP and every Drainer at once,
// bounded by Config.DrainTimeout, then stops the Upgrader; the app's other
// OnStop hooks run after it, while nothing serves any more.
//
// The Upgrader's Exit shuts the app down through fx.Shutdowner, so after a
// successful upgrade fx.App.Run returns and the old generation exits 0.
// fx logs every Shutdown as a received SIGTERM; Module decorates the app's
// event logger (EventLogger) to drop that line when no signal came. SIGHUP
// starts an upgrade (see Trigger to replace or turn it off), and every
// upgrade's result is logged. SIGHUP and SIGTERM are caught from just before
// Ready (the PID file names this process from Ready on) until the app has
// stopped, and not after.
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
