// Package loadtest drives a self-upgrading server from the outside, the way
// its users and their clients see it: it starts the server binary, loads it
// with HTTP clients, upgrades it with SIGHUP, and reports what the clients
// saw. The tests of the examples and the demo (examples/demo) are built on
// it; every "N upgrades under load, 0 failures" test should be.
//
// The server under test follows the contract of examples/http: it writes
// the pid of its serving generation to a pid file (atomically, by rename),
// upgrades on SIGHUP, stops on SIGTERM, and answers GET with a body that
// holds "pid=<pid of the serving process>".
//
// # Clients
//
// Start runs a Load: Config.Clients goroutines that each send GET requests
// back to back, with a new connection per request (NewConnection) or over
// one keep-alive connection each (KeepAlive), to a TCP address, a unix
// socket (Target.UnixSocket) or over HTTPS (Target.TLS). A Load counts the
// successful requests per serving pid and every failure, keeping the first
// error messages. It never retries: net/http's silent retry of idempotent
// requests on reused connections is turned off, so that a connection the
// server closes under a client counts as the failure it is for wrk, curl
// or a browser's fetch of a non-idempotent request.
//
//	load, err := loadtest.Start(loadtest.Config{
//		Target: loadtest.Target{URL: "http://" + addr + "/"},
//		Mode:   loadtest.KeepAlive,
//	})
//	...
//	stats := load.Stop()
//	if stats.Failures != 0 { t.Errorf("%v", stats) }
//
// Load.WaitServed waits for an event (a pid has answered n requests) rather
// than for time to pass; use it to make sure a generation served before the
// next upgrade.
//
// # The server
//
// StartServer starts the server's first generation and waits until its pid
// file names it. Server.Upgrade then sends SIGHUP to the serving
// generation, waits until the pid file names a new pid (the upgrade latency:
// tableflip writes the file when the new generation is ready), and waits
// until the old generation has exited, its drain included; it reports the
// old generation's exit status. Server.Stop sends SIGTERM and reports the
// exit status of the last generation. Server.Close, for cleanup, kills
// whatever is left. Every wait is on an event (inotify on the pid file's
// directory, a pidfd becoming readable) and bounded by the context, or by
// DefaultTimeout when the context has no deadline.
//
// Generations after the first are children of the generation before them,
// which exits; StartServer makes the calling process a child subreaper, so
// that they are reparented to it and their exit status can be known.
// Attach drives a server whose first generation something else started
// (internal/proctest, for example).
//
// ListenerInode, Listeners and HoldsSocket read /proc and sock_diag to prove
// that every generation serves from the same listening socket: the same
// inode, held by each new generation, and the only one on its address.
// Listener.HeldBy checks all three at once.
//
// # wrk
//
// StartWrk runs wrk (https://github.com/wg/wrk; Debian's package "wrk"),
// the keep-alive load generator that counts every socket error and never
// retries, and Wrk.Stop ends it early with SIGINT when the upgrades are
// done and parses its "Socket errors" and "Non-2xx or 3xx responses" lines.
//
// # A whole test
//
//	srv, err := loadtest.StartServer(ctx, exec.Command(bin, "-addr", "127.0.0.1:0", "-pidfile", pidFile), pidFile)
//	if err != nil { t.Fatal(err) }
//	defer srv.Close()
//	lns, _ := loadtest.Listeners(srv.PID()) // the port the server got
//	load, _ := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + lns[0].Addr + "/"}})
//	for range 20 {
//		up, err := srv.Upgrade(ctx)
//		if err != nil { t.Fatal(err) }
//		if err := load.WaitServed(ctx, up.NewPID, 5); err != nil { t.Fatal(err) }
//	}
//	stats := load.Stop() // stats.Failures must be 0
//	exit, err := srv.Stop(ctx) // exit.Code must be 0
//
// Package exampletest has this as reusable test helpers for the example
// programs (Program.Start, Server.UpgradeUnderLoad, Server.CheckStats).
//
// The process driver and the socket helpers are Linux only (pidfd, inotify,
// /proc); elsewhere they return ErrNotSupported. The clients, the wrk
// runner and Build work everywhere.
package loadtest
