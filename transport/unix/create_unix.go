//go:build unix

package unixtransport

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const afUnix = unix.AF_UNIX

type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileID{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

func sockType(network string) int {
	switch network {
	case "unixpacket":
		return unix.SOCK_SEQPACKET
	case "unixgram":
		return unix.SOCK_DGRAM
	}
	return unix.SOCK_STREAM
}

// create makes a new socket bound at path, with lc's mode and owner
// applied before it listens. It replaces a stale socket file (one nothing
// is bound to any more) and nothing else.
func (lc *ListenConfig) create(network, path string) (_ *os.File, _ *socketMeta, err error) {
	typ := sockType(network)
	if typ == unix.SOCK_SEQPACKET && !seqpacketSupported {
		return nil, nil, fmt.Errorf("%w: seqpacket unix sockets are Linux only", ErrNotSupported)
	}
	fd, err := socket(typ)
	if err != nil {
		return nil, nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "unix:"+path)
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if lc.Config.Control != nil {
		rc, err := f.SyscallConn()
		if err != nil {
			return nil, nil, err
		}
		if err := lc.Config.Control(network, path, rc); err != nil {
			return nil, nil, err
		}
	}
	meta := &socketMeta{path: path, created: true}
	if err := bindReplacingStale(fd, typ, path); err != nil {
		return nil, nil, err
	}
	if !isAbstract(path) {
		// From here on the file is ours: remove it on any failure.
		id, err := statID(path)
		if err != nil {
			os.Remove(path)
			return nil, nil, err
		}
		meta.hasID, meta.id = true, id
		if err := lc.applyOwnerMode(path); err != nil {
			meta.removeFile()
			return nil, nil, err
		}
	}
	if typ != unix.SOCK_DGRAM {
		// Clients are refused until now, so none connects before the
		// file has its mode and owner.
		if err := unix.Listen(fd, listenBacklog()); err != nil {
			meta.removeFile()
			return nil, nil, os.NewSyscallError("listen", err)
		}
	}
	return f, meta, nil
}

func (lc *ListenConfig) applyOwnerMode(path string) error {
	if lc.UID != 0 || lc.GID != 0 {
		uid, gid := -1, -1
		if lc.UID != 0 {
			uid = lc.UID
		}
		if lc.GID != 0 {
			gid = lc.GID
		}
		if err := unix.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("set owner %d group %d of the socket file: %w", uid, gid, &fs.PathError{Op: "lchown", Path: path, Err: err})
		}
	}
	if lc.Mode != 0 {
		if err := unix.Chmod(path, uint32(lc.Mode.Perm())); err != nil {
			return fmt.Errorf("set mode %v of the socket file: %w", lc.Mode.Perm(), &fs.PathError{Op: "chmod", Path: path, Err: err})
		}
	}
	return nil
}

// bindReplacingStale binds fd to path. When the path is taken, it probes
// the file: a socket that refuses connections has no process behind it
// (its creator died without removing it) and is replaced; anything else is
// an error and is left alone.
func bindReplacingStale(fd, typ int, path string) error {
	sa := &unix.SockaddrUnix{Name: path}
	for attempt := 0; ; attempt++ {
		err := unix.Bind(fd, sa)
		if err == nil {
			return nil
		}
		if err != unix.EADDRINUSE || isAbstract(path) || attempt == 2 {
			return bindError(path, err)
		}
		fi, lerr := os.Lstat(path)
		if errors.Is(lerr, fs.ErrNotExist) {
			continue // removed meanwhile: try again
		}
		if lerr != nil {
			return lerr
		}
		if fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("%w (it is a %s); refusing to replace it", ErrNotSocket, fileKind(fi.Mode()))
		}
		stale, perr := probeStale(typ, path)
		if perr != nil {
			return fmt.Errorf("cannot tell whether the socket file %s is in use: %w", path, perr)
		}
		if !stale {
			return fmt.Errorf("%w (another process serves on it; stop that one first)", ErrAddressInUse)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale socket file: %w", err)
		}
	}
}

// probeStale connects to the socket file at path. ECONNREFUSED means no
// socket is bound to it any more (or one is bound and not listening yet,
// which a concurrent start of the same service could be: that race is the
// same as with any bind-then-listen).
func probeStale(typ int, path string) (bool, error) {
	fd, err := socket(typ)
	if err != nil {
		return false, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	switch err {
	case unix.ECONNREFUSED:
		return true, nil
	case nil, unix.EAGAIN, unix.EINPROGRESS, unix.EPROTOTYPE:
		// Accepted, backlog full, or a live socket of another type.
		return false, nil
	case unix.ENOENT:
		return true, nil
	}
	return false, &fs.PathError{Op: "connect", Path: path, Err: err}
}

func bindError(path string, err error) error {
	perr := &fs.PathError{Op: "bind", Path: path, Err: err}
	switch err {
	case unix.ENOENT:
		return fmt.Errorf("directory %s does not exist: %w", filepath.Dir(path), perr)
	case unix.EACCES, unix.EPERM:
		return fmt.Errorf("no permission to create the socket file in %s: %w", filepath.Dir(path), perr)
	case unix.ENOTDIR:
		return fmt.Errorf("a component of %s is not a directory: %w", filepath.Dir(path), perr)
	case unix.EADDRINUSE:
		return fmt.Errorf("%w: %w", ErrAddressInUse, perr)
	}
	return perr
}

func fileKind(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "regular file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symbolic link"
	case fs.ModeNamedPipe:
		return "named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "device"
	}
	return "file of mode " + m.String()
}
