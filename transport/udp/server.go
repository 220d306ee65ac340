package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// ErrDrained is returned by Serve after Drain, as http.ErrServerClosed is
// after Shutdown.
var ErrDrained = errors.New("udp: server drained")

// A Handler answers one datagram that Serve read from conn, usually with
// conn.WriteToUDPAddrPort(answer, from). p is only valid during the call.
type Handler func(conn *net.UDPConn, p []byte, from netip.AddrPort)

// Server reads datagrams and hands each to Handler. It exists for Drain:
// the old generation stops reading from the shared socket and answers
// every datagram it has already read, while the new generation reads the
// rest. The zero value is not usable without a Handler; it needs no other
// setup.
type Server struct {
	// Handler answers each datagram. It runs on the goroutine that called
	// Serve, so a Serve loop reads its next datagram once the previous
	// one is answered. Call Serve from several goroutines on the same
	// conn to answer datagrams in parallel.
	Handler Handler
	// BufferSize is the size of the read buffer, the largest datagram
	// read whole (longer ones are truncated by the kernel). Zero means
	// 65535.
	BufferSize int

	mu         sync.Mutex
	conns      map[*net.UDPConn]int // Serve loops running per conn
	draining   bool
	drainingCh chan struct{} // closed when the drain has begun
	idle       chan struct{} // closed when draining and no loop runs
}

// Draining returns a channel that is closed once Drain has begun: from
// then on no Serve loop reads another datagram. Handlers that answer
// slowly (or in several datagrams) may watch it to finish sooner.
func (s *Server) Draining() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drainingCh == nil {
		s.drainingCh = make(chan struct{})
	}
	return s.drainingCh
}

// Serve reads datagrams from conn until Drain and calls Handler for each.
// It returns ErrDrained after Drain, or the read error that stopped it
// (net.ErrClosed when conn was closed). It does not close conn.
func (s *Server) Serve(conn *net.UDPConn) error {
	if s.Handler == nil {
		return errors.New("udp: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return ErrDrained
	}
	if s.conns == nil {
		s.conns = make(map[*net.UDPConn]int)
	}
	s.conns[conn]++
	s.mu.Unlock()
	defer s.exit(conn)

	size := s.BufferSize
	if size <= 0 {
		size = 65535
	}
	buf := make([]byte, size)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && s.isDraining() {
				return ErrDrained
			}
			return fmt.Errorf("udp: serve %s: %w", conn.LocalAddr(), err)
		}
		s.Handler(conn, buf[:n], from)
	}
}

func (s *Server) exit(conn *net.UDPConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[conn]--; s.conns[conn] == 0 {
		delete(s.conns, conn)
	}
	if s.draining && len(s.conns) == 0 {
		close(s.idle)
	}
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Drain stops every Serve loop from reading, waits until each has answered
// the datagram it read last, and returns: nil when all have returned, or
// ctx's error when ctx ends first. Datagrams not read yet stay in the
// socket for the next generation, which shares it.
//
// It stops reads with a read deadline on this process's conn. In Go a
// deadline belongs to the file descriptor's poller entry, not to the
// socket, so the other generation's reads of the same socket, through its
// own descriptor, are not affected. Drain is idempotent; Serve after Drain
// returns ErrDrained at once.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	if !s.draining {
		s.draining = true
		s.idle = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.idle)
		}
		// A deadline in the past wakes a blocked read at once. A read
		// that got a datagram returns it, so nothing read is dropped.
		// No Serve loop starts from now on, so once is enough.
		for c := range s.conns {
			c.SetReadDeadline(time.Unix(1, 0))
		}
		if s.drainingCh == nil {
			s.drainingCh = make(chan struct{})
		}
		close(s.drainingCh)
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("udp: drain: %w", ctx.Err())
	}
}
