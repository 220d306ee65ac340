// Package udp is the UDP transport: sockets on udp, udp4 and udp6 that the
// next generation inherits, and a Server whose Drain lets the old
// generation answer every datagram it has read before it exits.
//
// Both generations hold the same socket while an upgrade overlaps them;
// the kernel gives each datagram to whichever reads first. So the old
// generation stops reading (Drain), answers what it has already read, and
// exits, while the new generation reads everything after:
//
//	conn, err := udp.ListenPacket(ctx, upg, "udp", ":5353")
//	srv := &udp.Server{Handler: func(c *net.UDPConn, p []byte, from netip.AddrPort) {
//		c.WriteToUDPAddrPort(answer(p), from)
//	}}
//	go srv.Serve(conn)
//	upg.Ready()
//	<-upg.Exit()
//	srv.Drain(ctx) // answers what it read; the rest is the new generation's
//	conn.Close()
//	upg.Stop()
//
// A protocol with connections over UDP (QUIC) needs more than this: its
// datagrams belong to the generation that owns the connection, so they
// must be steered to it. Package steer does that on Linux, and the module
// transport/quic adapts it to quic-go (docs/quic.md).
//
// Importing the package also registers "udp", "udp4" and "udp6" for
// name-based addresses: tableflip.ListenPacket(ctx, upg, "udp://:5353").
package udp
