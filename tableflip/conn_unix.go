//go:build unix

package tableflip

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// handoffConn is one end of the private socketpair between a parent and its
// child. Files travel as SCM_RIGHTS attached to the first byte of the files
// frame that describes them; the reader queues every file it receives in
// order, and a files frame takes as many from the queue as it declares.
type handoffConn struct {
	c  *net.UnixConn
	br *bufio.Reader
	fr *fdReader

	wmu  sync.Mutex
	wbuf []byte
	cut  error // the error of a frame cut short

	closeOnce sync.Once
	closeErr  error
}

func newHandoffConn(c *net.UnixConn) *handoffConn {
	fr := &fdReader{c: c, oob: make([]byte, unix.CmsgSpace(4*253))}
	return &handoffConn{c: c, fr: fr, br: bufio.NewReaderSize(fr, 64<<10)}
}

func (h *handoffConn) setDeadline(t time.Time) { h.c.SetDeadline(t) }

// readFrame reads the next frame of a kind that carries no files. Files a
// peer attached anyway are closed: neither side holds on to descriptors it
// did not ask for (the old generation would leak them for good).
func (h *handoffConn) readFrame() (frame, error) {
	f, fds, err := h.readFiles()
	for _, fd := range fds {
		closeFd(fd)
	}
	return f, err
}

// readFiles reads the next frame and the descriptors attached to it, which
// the caller owns.
func (h *handoffConn) readFiles() (frame, []int, error) {
	f, err := readFrame(h.br)
	if err != nil {
		if h.fr.err != nil {
			err = h.fr.err
		}
		return f, nil, err
	}
	if f.nfds == 0 {
		return f, nil, nil
	}
	if len(h.fr.fds) < f.nfds {
		return f, nil, protoErr("files frame declares %d files, %d arrived", f.nfds, len(h.fr.fds))
	}
	fds := append([]int(nil), h.fr.fds[:f.nfds]...)
	h.fr.fds = h.fr.fds[f.nfds:]
	return f, fds, nil
}

// writeFrame sends one frame with fds attached. Once a frame has been cut
// short (its write failed after part of it went out), every later frame
// fails too: the peer could only misread what followed.
func (h *handoffConn) writeFrame(typ byte, payload []byte, fds []int) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if h.cut != nil {
		return h.cut
	}
	h.wbuf = appendFrame(h.wbuf[:0], typ, len(fds), payload)
	b := h.wbuf
	if len(fds) > 0 {
		n, _, err := h.c.WriteMsgUnix(b, unix.UnixRights(fds...), nil)
		if err != nil {
			err = fmt.Errorf("tableflip: send %d files: %w", len(fds), err)
			if n > 0 {
				h.cut = err
			}
			return err
		}
		b = b[n:]
	}
	if len(b) > 0 {
		if n, err := h.c.Write(b); err != nil {
			err = fmt.Errorf("tableflip: send frame %q: %w", typ, err)
			if n > 0 || len(b) < len(h.wbuf) {
				h.cut = err
			}
			return err
		}
	}
	return nil
}

func (h *handoffConn) writeEnd(total int) error {
	return h.writeFrame(frameEnd, binary.BigEndian.AppendUint32(nil, uint32(total)), nil)
}

// Close closes the socket and any received file nobody took.
func (h *handoffConn) Close() error {
	h.closeOnce.Do(func() {
		h.closeErr = h.c.Close()
		for _, fd := range h.fr.fds {
			unix.Close(fd)
		}
		h.fr.fds = nil
	})
	return h.closeErr
}

type fdReader struct {
	c   *net.UnixConn
	oob []byte
	fds []int
	err error
}

func (r *fdReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, oobn, flags, _, err := r.c.ReadMsgUnix(p, r.oob)
	if oobn > 0 {
		if perr := r.parse(r.oob[:oobn]); perr != nil {
			r.err = perr
			return 0, perr
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		// The kernel dropped files it could not install: most often
		// EMFILE in this process.
		r.err = protoErr("files lost in transit (control message truncated; is the open file limit too low?)")
		return 0, r.err
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		return 0, err
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// parse queues the descriptors of a control message. They arrived
// close-on-exec: the net package receives with MSG_CMSG_CLOEXEC, or sets the
// flag itself where that does not exist.
func (r *fdReader) parse(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return protoErr("control message: %v", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		r.fds = append(r.fds, fds...)
	}
	return nil
}

// socketpair returns the parent's end as a connection and the child's end
// as a file to place in the child's fd table.
func socketpair() (*handoffConn, *os.File, error) {
	fds, err := socketpairCloexec()
	if err != nil {
		return nil, nil, fmt.Errorf("tableflip: socketpair: %w", err)
	}
	pf := os.NewFile(uintptr(fds[0]), "handoff-parent")
	cf := os.NewFile(uintptr(fds[1]), "handoff-child")
	c, err := net.FileConn(pf)
	pf.Close()
	if err != nil {
		cf.Close()
		return nil, nil, fmt.Errorf("tableflip: handoff socket: %w", err)
	}
	return newHandoffConn(c.(*net.UnixConn)), cf, nil
}

// dupConn duplicates c's descriptor, close-on-exec, into one the caller
// owns. The duplicate is made inside RawConn.Control, not through
// (*os.File).Fd, which may switch the descriptor to blocking mode; and
// O_NONBLOCK belongs to the open file description, which every generation
// shares.
func dupConn(c syscall.Conn, name string) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("tableflip: %s: %w", name, err)
	}
	dup := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { dup, derr = dupFd(int(fd)) }); err != nil {
		return -1, fmt.Errorf("tableflip: %s: %w", name, err)
	}
	if derr != nil {
		return -1, fmt.Errorf("tableflip: dup %s: %w", name, derr)
	}
	return dup, nil
}

// dupFd duplicates fd, close-on-exec.
func dupFd(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}

func closeFd(fd int) { unix.Close(fd) }

// takeFile moves f's descriptor out of f: a duplicate the caller owns, and
// f closed.
func takeFile(f *os.File) (int, error) {
	defer f.Close()
	return dupConn(f, f.Name())
}

// openHandoff checks that fd is the handoff socket our parent made, takes
// it out of the reach of processes we spawn, and wraps it.
func openHandoff(fd int) (*handoffConn, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("%w: %s=%d but fd %d is not a socket: %w", ErrProtocol, handoffEnv, fd, fd, err)
	}
	if typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("%w: %s=%d but fd %d is not a stream socket", ErrProtocol, handoffEnv, fd, fd)
	}
	if err := checkPeerIsParent(fd); err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "handoff")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: handoff fd %d: %w", ErrProtocol, fd, err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%w: %s=%d but fd %d is not a unix socket", ErrProtocol, handoffEnv, fd, fd)
	}
	return newHandoffConn(uc), nil
}
