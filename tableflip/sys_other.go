//go:build !unix

package tableflip

import (
	"net"
	"os"
	"syscall"
	"time"
)

const supported = false

type handoffConn struct{ c net.Conn }

func (h *handoffConn) readFrame() (frame, error)                            { return frame{}, ErrNotSupported }
func (h *handoffConn) readFiles() (frame, []int, error)                     { return frame{}, nil, ErrNotSupported }
func (h *handoffConn) writeFrame(typ byte, payload []byte, fds []int) error { return ErrNotSupported }
func (h *handoffConn) writeEnd(total int) error                             { return ErrNotSupported }
func (h *handoffConn) setDeadline(t time.Time)                              {}
func (h *handoffConn) Close() error                                         { return nil }

func socketpair() (*handoffConn, *os.File, error)      { return nil, nil, ErrNotSupported }
func dupConn(c syscall.Conn, name string) (int, error) { return -1, ErrNotSupported }
func dupFd(fd int) (int, error)                        { return -1, ErrNotSupported }
func closeFd(fd int)                                   {}
func takeFile(f *os.File) (int, error)                 { f.Close(); return -1, ErrNotSupported }
func openHandoff(fd int) (*handoffConn, error)         { return nil, ErrNotSupported }
