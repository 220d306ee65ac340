//go:build !unix

package tableflip

import (
	"net"
	"os"
	"syscall"
)

const supported = false

type handoffConn struct{ c net.Conn }

func (h *handoffConn) readFrame() (frame, []*os.File, error)                { return frame{}, nil, ErrNotSupported }
func (h *handoffConn) writeFrame(typ byte, payload []byte, fds []int) error { return ErrNotSupported }
func (h *handoffConn) writeEnd(total int) error                             { return ErrNotSupported }
func (h *handoffConn) Close() error                                         { return nil }

func socketpair() (*handoffConn, *os.File, error)           { return nil, nil, ErrNotSupported }
func dupConn(c syscall.Conn, name string) (*os.File, error) { return nil, ErrNotSupported }
func openHandoff(fd int) (*handoffConn, error)              { return nil, ErrNotSupported }
