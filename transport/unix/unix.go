package unixtransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/internal/fdutil"
	"github.com/tableflip-go/tableflip/tableflip"
)

func init() {
	for _, network := range []string{"unix", "unixpacket", "unixgram"} {
		tableflip.MustRegister(transport(network))
	}
}

// ListenConfig creates unix sockets that survive upgrades. Its zero value
// is usable: the socket file gets the mode the kernel gives it
// (0777 &^ umask) and the process's owner and group.
type ListenConfig struct {
	// Mode, if not zero, is the permission bits of the socket file.
	// A client needs write permission on the file to connect.
	Mode os.FileMode
	// UID and GID, if not zero, are the owner and group of the socket
	// file (changing the owner needs root; changing the group to one of
	// the process's own groups does not). Zero leaves the one the file
	// was created with, which for a process running as root is root.
	UID, GID int
	// Config's Control function, if any, runs on the new socket before
	// it is bound, unchanged. An inherited socket keeps the options its
	// creator set.
	Config net.ListenConfig
}

// Listen returns the listener for network ("unix", or "unixpacket" on
// Linux) at path: the one the previous generation passed under the same
// network and path if there is one, a new one otherwise. Either way it is
// passed on to the next generation. A path that starts with '@' is a Linux
// abstract name, which has no file.
//
// A new socket is bound, then given Mode, UID and GID, and only then
// listens, so no client connects before the file has its permissions. If
// the path is taken by a socket file that nothing listens on (a crashed
// generation's), the file is replaced; a live socket is an error wrapping
// ErrAddressInUse, any other file one wrapping ErrNotSocket, and both are
// left alone.
//
// The path stays bound across upgrades: no generation removes it when its
// listener closes. It is removed when the service stops for good (Stop on
// a generation with no successor), and only if it is still the file the
// first generation created. An inherited socket keeps its file's mode and
// owner; ListenConfig is not applied again.
func (lc *ListenConfig) Listen(ctx context.Context, fds tableflip.Fds, network, path string) (*net.UnixListener, error) {
	switch network {
	case "unix", "unixpacket":
	default:
		return nil, fmt.Errorf("unixtransport: Listen: unknown network %q (want unix or unixpacket)", network)
	}
	return listen(ctx, lc, fds, network, path, func(f *os.File) (*net.UnixListener, error) {
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, err
		}
		ul, ok := ln.(*net.UnixListener)
		if !ok {
			ln.Close()
			return nil, fmt.Errorf("%w: the file is a %T", ErrWrongKind, ln)
		}
		if err := checkAddr(ul.Addr(), path); err != nil {
			ul.Close()
			return nil, err
		}
		// The next generation listens on the same file: closing ours must
		// not remove it.
		ul.SetUnlinkOnClose(false)
		return ul, nil
	})
}

// ListenPacket returns the datagram socket ("unixgram") bound at path, the
// inherited one or a new one, as Listen does for stream sockets. Datagrams
// sent to the path while generations overlap go to whichever generation
// reads first, as with UDP.
//
// Mode, UID and GID are applied right after bind; a datagram sent in
// between by a peer the kernel's default mode (0777 &^ umask) lets in can
// arrive.
func (lc *ListenConfig) ListenPacket(ctx context.Context, fds tableflip.Fds, network, path string) (*net.UnixConn, error) {
	if network != "unixgram" {
		return nil, fmt.Errorf("unixtransport: ListenPacket: unknown network %q (want unixgram)", network)
	}
	return listen(ctx, lc, fds, network, path, func(f *os.File) (*net.UnixConn, error) {
		pc, err := net.FilePacketConn(f)
		if err != nil {
			return nil, err
		}
		uc, ok := pc.(*net.UnixConn)
		if !ok {
			pc.Close()
			return nil, fmt.Errorf("%w: the file is a %T", ErrWrongKind, pc)
		}
		if err := checkAddr(uc.LocalAddr(), path); err != nil {
			uc.Close()
			return nil, err
		}
		return uc, nil
	})
}

// listen is the rest of Listen and ListenPacket once the network is
// checked: it gets the inherited or a new socket file, converts it with
// fromFile, passes on a socket this call created, and removes the file
// at the final stop.
func listen[C interface {
	syscall.Conn
	io.Closer
}](ctx context.Context, lc *ListenConfig, fds tableflip.Fds, network, path string, fromFile func(*os.File) (C, error)) (C, error) {
	var none C
	f, meta, err := lc.open(ctx, fds, network, path)
	if err != nil {
		return none, err
	}
	defer f.Close()
	c, err := fromFile(f)
	if err != nil {
		return none, lc.reject(fds, network, path, meta, err)
	}
	if meta.created {
		if err := fds.Pass(network, path, c, meta.encode()); err != nil {
			c.Close()
			meta.removeFile()
			return none, fmt.Errorf("unixtransport: %s %s: %w", network, path, err)
		}
	}
	meta.unlinkAtFinalStop(fds, network, path)
	return c, nil
}

// open returns the inherited file for network and path, or a new socket.
func (lc *ListenConfig) open(ctx context.Context, fds tableflip.Fds, network, path string) (*os.File, *socketMeta, error) {
	if err := checkPath(path); err != nil {
		return nil, nil, fmt.Errorf("unixtransport: %s %q: %w", network, path, err)
	}
	f, raw, err := fds.Inherit(network, path)
	switch {
	case err == nil:
		// Check the file before net.FileListener, which would turn a
		// datagram socket into a *net.UnixListener.
		merr := checkKind(f, network)
		var meta *socketMeta
		if merr == nil {
			meta, merr = decodeMeta(raw)
		}
		if merr != nil {
			f.Close()
			fds.Forget(network, path)
			return nil, nil, fmt.Errorf("unixtransport: inherited %s %s: %w", network, path, merr)
		}
		meta.path = path
		return f, meta, nil
	case !errors.Is(err, tableflip.ErrNotInherited):
		return nil, nil, fmt.Errorf("unixtransport: %s %s: %w", network, path, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("unixtransport: %s %s: %w", network, path, err)
	}
	if isAbstract(path) && (lc.Mode != 0 || lc.UID != 0 || lc.GID != 0) {
		return nil, nil, fmt.Errorf("unixtransport: %s %s: an abstract name has no file to give a mode or owner", network, path)
	}
	f, meta, err := lc.create(network, path)
	if err != nil {
		return nil, nil, fmt.Errorf("unixtransport: %s %s: %w", network, path, err)
	}
	return f, meta, nil
}

// reject handles an inherited or created socket that cannot be used:
// an inherited one is no longer passed on, a created file is removed.
func (lc *ListenConfig) reject(fds tableflip.Fds, network, path string, meta *socketMeta, err error) error {
	if meta.created {
		meta.removeFile()
		return fmt.Errorf("unixtransport: %s %s: %w", network, path, err)
	}
	fds.Forget(network, path)
	return fmt.Errorf("unixtransport: inherited %s %s: %w", network, path, err)
}

// checkKind verifies, before it is converted, that an inherited file is a
// unix socket of network's type, listening if network is a stream one.
func checkKind(f *os.File, network string) error {
	info, err := fdutil.Inspect(f)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWrongKind, err)
	}
	want := fdutil.SocketInfo{Family: afUnix, Type: sockType(network), Listening: network != "unixgram"}
	if info != want {
		return fmt.Errorf("%w: got %s, want %s", ErrWrongKind, info, want)
	}
	return nil
}

// checkAddr verifies that the socket is bound to path.
func checkAddr(addr net.Addr, path string) error {
	if addr == nil || addr.String() != path {
		return fmt.Errorf("%w: the socket is bound to %q, not %q", ErrWrongKind, addr, path)
	}
	return nil
}

func isAbstract(path string) bool { return len(path) > 0 && path[0] == '@' }

func checkPath(path string) error {
	if path == "" {
		return errors.New("empty path (unnamed sockets cannot be inherited by name)")
	}
	if isAbstract(path) && !abstractSupported {
		return fmt.Errorf("%w: abstract names are Linux only", ErrNotSupported)
	}
	if len(path) > maxPathLen {
		return fmt.Errorf("%w: %d bytes, at most %d fit", ErrPathTooLong, len(path), maxPathLen)
	}
	return nil
}

// socketMeta is what the transport knows about a socket file: the
// identity of the file its first generation created, so that the final
// stop removes that file and never one another process put there since.
// It travels as the handoff metadata.
type socketMeta struct {
	path    string
	created bool // by this process, in this call
	hasID   bool
	id      fileID
}

const metaPrefix = "unixtransport/1 "

func (m *socketMeta) encode() []byte {
	if !m.hasID {
		return nil
	}
	return fmt.Appendf(nil, metaPrefix+"dev=%d ino=%d", m.id.dev, m.id.ino)
}

func decodeMeta(b []byte) (*socketMeta, error) {
	m := &socketMeta{}
	// No identity: abstract, not created by this transport (systemd's
	// socket activation owns its file), or written by another version of
	// it. Without one the final stop leaves the file alone.
	if !bytes.HasPrefix(b, []byte(metaPrefix)) {
		return m, nil
	}
	if _, err := fmt.Sscanf(string(b), metaPrefix+"dev=%d ino=%d", &m.id.dev, &m.id.ino); err != nil {
		return nil, fmt.Errorf("%w: metadata %q: %w", ErrWrongKind, b, err)
	}
	m.hasID = true
	return m, nil
}

// removeFile removes the socket file if it is still the one m describes.
func (m *socketMeta) removeFile() (bool, error) {
	if !m.hasID {
		return false, nil
	}
	id, err := statID(m.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	if id != m.id {
		return false, nil
	}
	if err := os.Remove(m.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// unlinkAtFinalStop removes the socket file when the service stops for
// good. A generation that stops before it was ready while its parent still
// serves keeps it: the Upgrader runs no FinalStop hook there.
func (m *socketMeta) unlinkAtFinalStop(fds tableflip.Fds, network, path string) {
	if !m.hasID {
		return
	}
	log := fds.Logger().With(zap.String("network", network), zap.String("path", path))
	fds.AddHooks(tableflip.Hooks{
		FinalStop: func() {
			removed, err := m.removeFile()
			switch {
			case err != nil:
				log.Error("remove unix socket", zap.Error(err))
			case removed:
				log.Info("unix socket removed")
			default:
				log.Info("unix socket not removed: the path is gone or is another file now")
			}
		},
	})
}

type transport string

var _ tableflip.Unclaimer = transport("unix")

func (t transport) Name() string { return string(t) }

func (t transport) Kind() tableflip.Kind {
	if t == "unixgram" {
		return tableflip.KindPacketConn
	}
	return tableflip.KindListener
}

// Unclaimed removes the socket file of a path the new configuration no
// longer names: no generation will listen on it again. As at the final
// stop, only if it is still the file the first generation created.
func (t transport) Unclaimed(key string, meta []byte) {
	if isAbstract(key) {
		return
	}
	m, err := decodeMeta(meta)
	if err != nil {
		return
	}
	m.path = key
	m.removeFile()
}

// Open opens a listener for "unix" and "unixpacket", a packet conn for
// "unixgram", with the zero ListenConfig.
func (t transport) Open(ctx context.Context, fds tableflip.Fds, address string) (io.Closer, error) {
	var lc ListenConfig
	if t == "unixgram" {
		c, err := lc.ListenPacket(ctx, fds, string(t), address)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	ln, err := lc.Listen(ctx, fds, string(t), address)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// Listen is ListenConfig.Listen with the zero configuration.
func Listen(ctx context.Context, fds tableflip.Fds, network, path string) (*net.UnixListener, error) {
	var lc ListenConfig
	return lc.Listen(ctx, fds, network, path)
}

// ListenPacket is ListenConfig.ListenPacket with the zero configuration.
func ListenPacket(ctx context.Context, fds tableflip.Fds, network, path string) (*net.UnixConn, error) {
	var lc ListenConfig
	return lc.ListenPacket(ctx, fds, network, path)
}
