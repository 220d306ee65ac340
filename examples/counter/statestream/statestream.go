package statestream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// transportName is the name companion files of a Stream are passed under.
const transportName = "statestream"

// ErrClosed is what Update returns after Close: this generation takes no
// more writes, the next one does.
var ErrClosed = errors.New("statestream: closed, the next generation takes the writes")

// Config says how a Stream reads and changes the application's state. The
// functions run under the Stream's lock, never concurrently with Update's
// change.
type Config struct {
	// Snapshot returns the whole state, in the old generation, when an
	// upgrade starts.
	Snapshot func() []byte
	// Restore replaces the state with a snapshot, in the new generation.
	Restore func(snapshot []byte) error
	// Apply applies one change record that Update's change returned, in
	// the new generation, in the order the old one made them.
	Apply func(record []byte) error
	// WriteTimeout bounds the send of one change to a successor that does
	// not read: past it the stream to that successor is given up (see
	// Stream.Update). Zero means 5 seconds.
	WriteTimeout time.Duration
}

// record kinds on the wire: a 1-byte kind, a 4-byte big-endian length,
// the payload.
const (
	kindSnapshot = 'S'
	kindChange   = 'C'
	kindEnd      = 'E'
	maxRecord    = 64 << 20
)

// Stream is one generation's side of the state handoff: it receives the
// parent's state (Open) and sends its own to each successor.
type Stream struct {
	fds tableflip.Fds
	key string
	cfg Config
	log *zap.Logger

	remove   func()
	caughtUp chan struct{}
	recvErr  error // set before caughtUp closes

	mu     sync.Mutex
	out    *os.File // this upgrade's socket to the child, nil when none
	outW   *bufio.Writer
	closed bool
}

// Open claims the stream the parent opened under key (when there is a
// parent) and starts applying it in the background, and registers the
// hooks that open a stream to each successor. Call it before Ready, and
// wait for CaughtUp before taking any request that reads or writes the
// state.
func Open(fds tableflip.Fds, key string, cfg Config) (*Stream, error) {
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	s := &Stream{fds: fds, key: key, cfg: cfg, log: fds.Logger(), caughtUp: make(chan struct{})}
	f, _, err := fds.Inherit(transportName, key)
	switch {
	case errors.Is(err, tableflip.ErrNotInherited):
		close(s.caughtUp) // first generation, or a parent without a stream
	case err != nil:
		return nil, err
	default:
		// The snapshot is in the socket before the child starts: read
		// it now, so that a state that cannot be restored fails this
		// generation before Ready, and the parent serves on.
		r := bufio.NewReaderSize(f, 64<<10)
		f.SetReadDeadline(time.Now().Add(time.Minute))
		kind, p, err := readRecord(r)
		if err == nil && kind != kindSnapshot {
			err = fmt.Errorf("unexpected record %q, want the snapshot", kind)
		}
		if err == nil {
			err = cfg.Restore(p)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("statestream: %s snapshot from the parent: %w", key, err)
		}
		f.SetReadDeadline(time.Time{})
		go s.receive(f, r)
	}
	s.remove = fds.AddHooks(tableflip.Hooks{Prepare: s.prepare, Done: s.done})
	return s, nil
}

// CaughtUp is closed when every change of the parent has been applied (at
// once without a parent). Err then says whether the stream ended well.
func (s *Stream) CaughtUp() <-chan struct{} { return s.caughtUp }

// Err is the receive error once CaughtUp is closed: nil when the parent
// sent its end marker or died mid-stream (all it acknowledged was in the
// socket), else why the state could not be read or applied.
func (s *Stream) Err() error {
	select {
	case <-s.caughtUp:
		return s.recvErr
	default:
		return nil
	}
}

// receive applies the parent's changes until its end marker.
func (s *Stream) receive(f *os.File, r *bufio.Reader) {
	defer close(s.caughtUp)
	defer f.Close()
	applied := 0
	for {
		kind, p, err := readRecord(r)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			// The parent died mid-stream. It sends a change before it
			// acknowledges it: we have them all (a record cut short was
			// never acknowledged).
			s.log.Warn("statestream: parent's stream ended without its end marker (parent gone)", zap.String("key", s.key), zap.Int("changes", applied))
			return
		}
		if err != nil {
			s.fail(fmt.Errorf("statestream: read %s: %w", s.key, err))
			return
		}
		switch kind {
		case kindChange:
			s.mu.Lock()
			err = s.cfg.Apply(p)
			s.mu.Unlock()
			applied++
		case kindEnd:
			s.log.Info("statestream: caught up with the parent", zap.String("key", s.key), zap.Int("changes", applied))
			return
		default:
			err = fmt.Errorf("statestream: %s: unexpected record %q", s.key, kind)
		}
		if err != nil {
			s.fail(err)
			return
		}
	}
}

// readRecord reads one record. The stream's end is io.EOF at a record
// boundary, io.ErrUnexpectedEOF inside one.
func readRecord(r *bufio.Reader) (kind byte, p []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxRecord {
		return 0, nil, fmt.Errorf("record of %d bytes", n)
	}
	p = make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], p, nil
}

func (s *Stream) fail(err error) {
	s.recvErr = err
	s.log.Error("statestream: state from the parent lost", zap.String("key", s.key), zap.Error(err))
}

// prepare opens the stream to the child of this upgrade and sends the
// snapshot: from then on Update sends every change.
func (s *Stream) prepare(ctx context.Context, h *tableflip.Handoff) error {
	// A generation upgraded before it caught up would snapshot a state
	// that misses its parent's last changes.
	select {
	case <-s.caughtUp:
	case <-ctx.Done():
		return fmt.Errorf("statestream: %s not caught up with the previous generation: %w", s.key, ctx.Err())
	}
	if err := s.Err(); err != nil {
		return err
	}
	ours, theirs, err := socketpair()
	if err != nil {
		return fmt.Errorf("statestream: socketpair: %w", err)
	}
	defer theirs.Close() // the handoff keeps its own copy
	if err := h.AddFile(transportName, s.key, theirs, nil); err != nil {
		ours.Close()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ours.Close()
		return ErrClosed
	}
	s.dropLocked() // a stream of an earlier upgrade, should one be left
	s.out, s.outW = ours, bufio.NewWriterSize(ours, 64<<10)
	if err := s.sendLocked(kindSnapshot, s.cfg.Snapshot()); err != nil {
		s.dropLocked()
		return fmt.Errorf("statestream: send %s snapshot: %w", s.key, err)
	}
	return nil
}

// done ends the stream of a failed upgrade: this generation serves on with
// the state it has.
func (s *Stream) done(pid int, err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	s.dropLocked()
	s.mu.Unlock()
}

// Update runs change under the stream's lock and, during an upgrade, sends
// the record it returns to the successor before it returns: only then may
// the caller acknowledge the change to its client. After Close it does not
// run change and returns ErrClosed. Call it only once CaughtUp is closed:
// before, the parent's changes are still being applied.
//
// A successor that does not read its stream within Config.WriteTimeout is
// given up: the change is kept here, the stream is closed, and the error is
// logged. Such a successor hangs and fails its upgrade; if it became ready
// anyway it would miss changes, which the log says.
func (s *Stream) Update(change func() (record []byte)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	rec := change()
	if s.out == nil {
		return nil
	}
	if err := s.sendLocked(kindChange, rec); err != nil {
		s.log.Error("statestream: cannot send to the successor (gone, or not reading): stream given up", zap.String("key", s.key), zap.Error(err))
		s.dropLocked()
	}
	return nil
}

func (s *Stream) sendLocked(kind byte, p []byte) error {
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	s.out.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	s.outW.Write(hdr[:])
	s.outW.Write(p)
	return s.outW.Flush()
}

func (s *Stream) dropLocked() {
	if s.out != nil {
		s.out.Close()
		s.out, s.outW = nil, nil
	}
}

// Close ends this generation's writes: later Updates return ErrClosed, and
// the successor, if any, gets the end marker and starts serving. Call it
// when the drain is over, so that every request this generation accepted
// has been answered. It is idempotent.
func (s *Stream) Close() error {
	s.remove()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.out == nil {
		return nil
	}
	err := s.sendLocked(kindEnd, nil)
	s.dropLocked()
	if err != nil {
		return fmt.Errorf("statestream: end %s: %w", s.key, err)
	}
	return nil
}
