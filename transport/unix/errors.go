package unixtransport

import "errors"

// Sentinel errors. Errors from this package wrap one of these, or the
// operating system's error (test those with errors.Is and fs.ErrNotExist,
// fs.ErrPermission, syscall.ENOTDIR, ...).
var (
	// ErrNotSupported is returned on platforms without unix sockets of
	// the asked kind (Windows; seqpacket and abstract names outside Linux).
	ErrNotSupported = errors.New("unixtransport: not supported on this platform")
	// ErrAddressInUse is returned when a live socket, most likely another
	// process's, is bound to the path. It is left alone.
	ErrAddressInUse = errors.New("unixtransport: a live socket is bound to the path")
	// ErrNotSocket is returned when the path exists and is not a socket.
	// The file is left alone.
	ErrNotSocket = errors.New("unixtransport: the path exists and is not a socket")
	// ErrPathTooLong is returned for a path longer than a unix socket
	// address holds (sun_path: 108 bytes on Linux, 104 on the BSDs).
	ErrPathTooLong = errors.New("unixtransport: path too long for a unix socket address")
	// ErrWrongKind is returned when the file inherited under a key is not
	// the socket that key names (another family, type or path).
	ErrWrongKind = errors.New("unixtransport: inherited file is not the socket its key names")
)
