// Package tcp is the TCP transport: listeners on tcp, tcp4 and tcp6 that the
// next generation inherits.
//
//	ln, err := tcp.Listen(ctx, upg, "tcp", "127.0.0.1:8080")
//
// Importing the package also registers "tcp", "tcp4" and "tcp6" for
// name-based addresses: tableflip.Listen(ctx, upg, "tcp://:8080").
package tcp
