// Package drain stops a net/http server without losing a request, for the
// generation that exits during a zero-downtime upgrade.
//
// During an upgrade the listening socket is shared: the new generation
// already accepts on it while the old one drains. Sharing alone is not
// enough. With the plain http.Server.Shutdown pattern, clients lose requests
// at every upgrade, for two reasons inside net/http:
//
//   - A request whose header is read after Shutdown has begun is dropped
//     without an answer. This hits clients that had just connected or were
//     about to reuse a connection.
//   - Idle keep-alive connections are closed while their client may be
//     sending the next request on them. With wrk -c32, every one of its
//     connections saw a read error at each upgrade.
//
// http.Server.SetKeepAlivesEnabled(false) does not help, because it also
// closes the idle connections at once.
//
// A Server wraps the http.Server and drains it in this order: stop
// accepting; answer the next request on every connection with
// "Connection: close", so that the client moves to a new connection, which
// the new generation accepts; give idle and new connections a grace
// (Options.IdleGrace) to send that request; and call http.Server.Shutdown
// only once no connection can lose a request to it. Shutdown also sends
// HTTP/2 connections a GOAWAY, which is HTTP/2's loss-free way to send a
// client elsewhere. All of this is bounded by the context given to Drain.
// See Server.Drain for the details.
//
// # Use
//
//	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
//	d := drain.New(srv, drain.Options{})
//	go func() {
//		if err := d.Serve(ln); err != nil { // ln from the upgrader, shared with the next generation
//			log.Print(err)
//		}
//	}()
//
//	// Later: the next generation is ready (for example the Upgrader's
//	// Exit channel has closed), so this one leaves.
//	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	defer cancel()
//	if err := d.Drain(ctx); err != nil {
//		log.Print(err) // an *IncompleteError: some connections were cut
//	}
//
// For HTTPS, call d.ServeTLS(ln, cfg). To offer HTTP/2 as well, put
// "h2" in cfg.NextProtos and either leave srv.TLSConfig nil or set it to cfg.
//
// Run does all of the above for a generation of a service: it handles
// SIGHUP and SIGTERM, calls the Upgrader's Ready, serves only once Ready
// has returned nil, and drains once the next generation is ready:
//
//	return drain.Run(upg, func() error { return d.Serve(ln) }, d.Drain, drain.RunOptions{Logger: log})
//
// With RunOptions.Resume, a generation that has handed over takes the
// service back if its successor dies while it still drains (or lingers,
// RunOptions.Linger): Resume listens again under the same names, which
// hands out the sockets the Upgrader still holds, and returns a new
// server's Serve and Drain. See tableflip.Upgrader.Resumed and
// examples/http.
//
// A client that has sent part of a request when the drain begins (a slow
// client, or one whose request is on its way) is not idle: the drain waits
// for it until its own deadline, as for a request in a handler. Set the
// http.Server's ReadHeaderTimeout to bound how long such a client may take.
//
// Handlers whose responses never end on their own (event streams, long
// polls) and handlers that hijack their connection (WebSockets) should watch
// Server.Draining and finish. Drain cannot end them gracefully: it waits for
// them until its context ends.
//
// What is left to the client: an HTTP/1 connection that stays idle for the
// whole grace is closed, and a request the client sends at that very moment
// is lost. HTTP/1.1 has no way to tell an idle connection to go away. Go's
// http.Transport and browsers retry an idempotent request in that case. A
// response that was already being written when the drain began goes out
// without "Connection: close". Its connection then gets the grace like any
// idle one.
//
// # The pattern for other servers
//
// The same three steps apply to any server that shares its listening socket
// with the next generation. First, stop accepting by closing this process's
// listener only: the socket stays open in the next generation, and
// connections still waiting in its accept queue go there. Second, on every
// open connection, finish the exchange in flight and tell the client to move,
// in whatever way the protocol allows. Third, bound everything with a
// deadline, and cut what is left when it passes.
//
// gRPC. grpc.Server.GracefulStop closes the server's listeners, sends every
// HTTP/2 connection a GOAWAY (gRPC clients then connect again, to the next
// generation), and waits for the RPCs in flight. It has no deadline of its
// own, so give it one, with Stop as the fallback:
//
//	done := make(chan struct{})
//	go func() {
//		gs.GracefulStop() // closes lis, GOAWAY, waits for the RPCs in flight
//		close(done)
//	}()
//	select {
//	case <-done:
//	case <-ctx.Done():
//		gs.Stop() // cancels the RPCs still running and closes every connection
//		<-done
//	}
//
// The gs.Serve(lis) call then returns nil. Streaming RPCs that never end on
// their own hold GracefulStop until the deadline. End them from the server
// side when the drain begins, for example by closing a channel that their
// handlers select on.
//
// Raw TCP. Close the listener. Let each connection finish the exchange in
// flight, because closing in the middle of one loses it. Give a connection
// that is waiting between exchanges a grace to send its next request, and
// answer that request. Then end the connection at the exchange boundary,
// with the protocol's own goodbye if it has one (SMTP's 421 reply, for
// example). A protocol without a goodbye can only close the connection. A
// client that is sending at that moment loses its request, just as with an
// idle HTTP/1 connection. Clients of such protocols usually reconnect and
// retry what is safe to retry:
//
//	// Accept loop: ln.Close() from the drain makes Accept fail.
//	for {
//		c, err := ln.Accept()
//		if err != nil {
//			break
//		}
//		wg.Add(1)
//		go func() { defer wg.Done(); handle(drainCtx, c) }()
//	}
//
//	func handle(drainCtx context.Context, c net.Conn) {
//		defer c.Close()
//		// When the drain begins, a client waiting between requests
//		// gets idleGrace to send its next one.
//		stop := context.AfterFunc(drainCtx, func() {
//			c.SetReadDeadline(time.Now().Add(idleGrace))
//		})
//		defer stop()
//		r := bufio.NewReader(c)
//		for {
//			req, err := readRequest(r) // fails once the grace is over
//			if err != nil {
//				return
//			}
//			c.SetReadDeadline(time.Time{}) // no deadline mid-exchange
//			writeResponse(c, req)
//			if drainCtx.Err() != nil {
//				// Exchange done and the drain is on: send the
//				// protocol's goodbye here if it has one, then close.
//				return
//			}
//		}
//	}
//
//	// Drain: cancel drainCtx after ln.Close(), then wait for wg until the
//	// deadline, and close the connections that are still open.
//
// Clearing the read deadline once a request has arrived may erase the one
// that AfterFunc has just set. The check after the answer covers that case:
// a drain that began during the exchange ends the connection there.
package drain
