package tableflipprom

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/tableflip-go/tableflip/tableflip"
)

// The name of the companion file that links two generations.
const (
	companionTransport = "tableflipprom"
	companionKey       = "counts"
)

// maxMessage bounds one message: a snapshot is a few hundred bytes.
const maxMessage = 64 << 10

// linkTimeout bounds a write to a link, and the child's read of the first
// message, which is written before the child starts.
const linkTimeout = 5 * time.Second

var errEOF = errors.New("link closed by the other generation")

// message is one line on a link, in JSON.
type message struct {
	// Started is when the upgrade began, on CLOCK_MONOTONIC (shared by
	// every process of the machine); set in the first message only.
	Started mono `json:"started,omitempty"`
	// Counts are every count so far of the sending generation and those
	// before it.
	Counts snapshot `json:"counts"`
}

// mono is a reading of CLOCK_MONOTONIC in nanoseconds (see
// monotonicNow); zero means none.
type mono int64

// time is m as a time of this process's clock; zero when m is zero or in
// the future.
func (m mono) time() time.Time {
	now := monotonicNow()
	if m <= 0 || now == 0 || m > now {
		return time.Time{}
	}
	return time.Now().Add(-time.Duration(now - m))
}

// link is one end of the socketpair between two generations.
type link struct {
	conn   net.Conn
	r      *bufio.Reader
	closed atomic.Bool
	done   chan struct{} // closed when the reader of a parent link returns
}

// fileLink makes a link of f, which it closes.
func fileLink(f *os.File) (*link, error) {
	defer f.Close()
	conn, err := net.FileConn(f) // non-blocking, so that Close ends a Read
	if err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	return &link{conn: conn, r: bufio.NewReaderSize(conn, 4096), done: make(chan struct{})}, nil
}

// inheritLink claims the link the parent left, and reads its first
// message. The error wraps tableflip.ErrNotInherited when there is none.
func inheritLink(fds tableflip.Fds) (*link, message, error) {
	f, _, err := fds.Inherit(companionTransport, companionKey)
	if err != nil {
		return nil, message{}, err
	}
	l, err := fileLink(f)
	if err != nil {
		return nil, message{}, err
	}
	l.conn.SetReadDeadline(time.Now().Add(linkTimeout))
	msg, err := l.receive()
	l.conn.SetReadDeadline(time.Time{})
	if err != nil {
		l.close()
		return nil, message{}, fmt.Errorf("tableflipprom: first message: %w", err)
	}
	return l, msg, nil
}

func (l *link) send(msg message) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	l.conn.SetWriteDeadline(time.Now().Add(linkTimeout))
	_, err = l.conn.Write(append(b, '\n'))
	return err
}

// receive reads one message and checks it.
func (l *link) receive() (message, error) {
	var line []byte
	for {
		chunk, isPrefix, err := l.r.ReadLine()
		if errors.Is(err, io.EOF) {
			return message{}, errEOF
		}
		if err != nil {
			return message{}, err
		}
		line = append(line, chunk...)
		if len(line) > maxMessage {
			return message{}, fmt.Errorf("message longer than %d bytes", maxMessage)
		}
		if !isPrefix {
			break
		}
	}
	var msg message
	if err := json.Unmarshal(line, &msg); err != nil {
		return message{}, fmt.Errorf("bad message: %w", err)
	}
	if err := msg.Counts.check(); err != nil {
		return message{}, fmt.Errorf("bad message: %w", err)
	}
	return msg, nil
}

func (l *link) close() {
	l.closed.Store(true)
	l.conn.Close()
}

func (l *link) isClosed() bool { return l.closed.Load() }
