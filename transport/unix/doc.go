// Package unixtransport is the unix socket transport: stream ("unix"),
// seqpacket ("unixpacket", Linux) and datagram ("unixgram") sockets, at a
// filesystem path or a Linux abstract name ("@name"), that the next
// generation inherits. It is not called unix, so that it can be imported
// next to golang.org/x/sys/unix.
//
//	ln, err := unixtransport.Listen(ctx, upg, "unix", "/run/app.sock")
//
// # The path across upgrades
//
// A unix socket file is the address clients dial, so it must exist for
// as long as the service runs, whichever generation serves:
//
//   - Every listener this package returns has SetUnlinkOnClose(false): an
//     old generation that closes its listener leaves the file to its
//     successor, which listens on the very same socket.
//   - The file is removed at the final stop only, when Stop is called on
//     a generation that has no successor (a FinalStop hook). A new
//     generation that fails before it is ready does not remove it: its
//     parent still serves.
//   - The first generation records the file's identity (device and inode)
//     in the handoff metadata, and the final stop removes the path only if
//     it is still that file. A socket another process has put there since
//     is left alone; so is a file this package did not create (systemd's
//     socket activation owns its own).
//
// # Creating the socket
//
// A new socket is bound, given ListenConfig's Mode, UID and GID, and only
// then listens: a client is refused (ECONNREFUSED) until the file has its
// permissions, so no one connects through a wider mode in between. (This
// is why the socket is not created with net.ListenConfig: it binds and
// listens in one call. A umask would be process-wide, and binding under a
// temporary name and renaming it would leave the socket's own address
// naming the temporary file.) A datagram socket has no listen step, so
// its mode is applied right after bind.
//
// An inheriting generation applies nothing: the file is the same inode,
// and keeps the mode and owner the first generation gave it, even if the
// new generation's ListenConfig says otherwise.
//
// When the path is taken, the file decides:
//
//   - a socket file that refuses connections has no process behind it
//     (its server crashed or was killed): it is stale, and is replaced;
//   - a socket something listens on is left alone, with an error wrapping
//     ErrAddressInUse;
//   - anything else (a regular file, a directory) is left alone, with an
//     error wrapping ErrNotSocket.
//
// Other errors say what is wrong and wrap the cause: ErrPathTooLong for a
// path that does not fit in sun_path (108 bytes on Linux), fs.ErrNotExist
// for a missing directory, fs.ErrPermission, syscall.ENOTDIR, and
// ErrWrongKind for an inherited file that is not the socket its key
// names (another family, type or path). No error leaves a descriptor open
// or a file behind.
//
// # Keys and names
//
// A socket is passed under its network and its path as asked, so
// "unixgram" "/run/app.sock" and "unix" "/run/app.sock" are different
// keys. Importing the package registers "unix", "unixpacket" and
// "unixgram" for name-based addresses:
//
//	ln, err := tableflip.Listen(ctx, upg, "unix:///run/app.sock")
//	ln, err := tableflip.Listen(ctx, upg, "unix://@app")
//	pc, err := tableflip.ListenPacket(ctx, upg, "unixgram:///run/app.dgram")
//
// # Datagram sockets
//
// A unixgram socket is shared by both generations while they overlap, as
// a UDP socket is (see package udp): each datagram goes to whichever reads
// first, so the old generation should stop reading (SetReadDeadline on
// its own conn), answer what it has read, and exit.
package unixtransport
