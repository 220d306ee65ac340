// Package tableflip upgrades a running network service to a new version of
// itself without dropping a connection or a request.
//
// A process that runs an Upgrader is one generation of the service. When it
// is told to upgrade (SIGHUP, systemctl reload, an admin endpoint), it starts
// the next version of its binary and hands it, over a private socketpair,
// every file it passes on (listening sockets, packet sockets, any other
// descriptor a transport knows) and the application state it chooses to
// write. The new generation claims those files, reads the state, and calls
// Ready. Only then does the old generation's Upgrade return: its Exit
// channel closes, it stops accepting, drains what it has in flight, and
// exits. If the new generation crashes, hangs past the timeout, or reports an
// init error, the old one keeps serving and Upgrade says why.
//
// The life of an Upgrader:
//
//	upg, err := tableflip.New(tableflip.Options{PIDFile: "/run/app.pid"})
//	if err != nil { ... }
//	defer upg.Stop()
//
//	go func() { // upgrade on SIGHUP
//		for range sighup {
//			if _, err := upg.Upgrade(ctx); err != nil { log... }
//		}
//	}()
//
//	ln, err := tcp.Listen(ctx, upg, "tcp", ":8080") // inherited or new
//	if err != nil { upg.Fail(err); ... }           // the parent serves on
//	srv := drain.New(&http.Server{Handler: h}, drain.Options{Logger: log})
//
//	if err := upg.Ready(); err != nil { ... } // the parent may exit now
//	go srv.Serve(ln)                           // accept only once committed
//	<-upg.Exit()                               // a successor is ready, or Stop
//	srv.Drain(ctx)                             // finish every request
//
// A generation accepts nothing before Ready has returned nil: until the
// parent has acknowledged it, the parent may still give up on it and serve
// on. Meanwhile connections wait in the shared socket's backlog.
//
// Files are claimed through transports, one package per kind of descriptor
// (transport/tcp, transport/unix, transport/udp, transport/tls, or a plugin
// of your own) built on the Fds interface: Inherit claims what the parent
// passed under a transport name and key (Inherited lists the keys not
// claimed yet), Pass hands a file to every later generation, and Hooks let a transport take part in an upgrade (companion
// files, fresh metadata) and in the final stop (unlinking a socket path).
// Programs configured by files or flags open transports by name with Listen,
// ListenPacket and Open ("tcp://:8080", "unix:///run/app.sock").
//
// When systemd started the service, the Upgrader speaks sd_notify
// (READY=1, MAINPID= of each new generation, RELOADING=1, STOPPING=1) and
// socket-activated files satisfy the matching Inherit calls of the first
// generation.
//
// A process has one Upgrader: a second New fails with ErrDuplicate until the
// first is stopped. The wire format of the handoff is in docs/protocol.md,
// the code's layout (parent.go and child.go, one file per side of an
// upgrade) in docs/architecture.md. New returns ErrNotSupported on Windows;
// tablefliptest.New returns the real Upgrader without a parent, which never
// upgrades, for tests and for Windows.
package tableflip
