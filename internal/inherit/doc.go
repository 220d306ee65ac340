// Package inherit is the flow by which a transport gets its socket across
// upgrades: claim the one the previous generation passed under the
// socket's key, or else create it and pass it on.
//
// The tcp and udp transports, which create their sockets with the net
// package, share it. unixtransport has a flow of its own: it creates a
// file on disk, which it removes when the new socket cannot be used, and
// passes the file's identity as metadata.
package inherit
