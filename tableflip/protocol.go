package tableflip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The handoff protocol. docs/protocol.md is its specification; keep the two
// in step. Everything here is platform independent and works on byte
// streams, so the decoder can be fuzzed without sockets.

const (
	// protocolVersion is the version this package speaks. Bump it on any
	// change to the frames; only the hello's magic and version, its first
	// seven bytes, are frozen.
	protocolVersion uint16 = 1
	// handoffEnv names the file descriptor of the handoff socket in the
	// child's environment.
	handoffEnv = "TABLEFLIP_HANDOFF"

	frameHeaderLen = 7
	// maxFramePayload bounds every frame, so hostile input cannot make the
	// reader allocate without limit.
	maxFramePayload = 1 << 20
	// maxFdsPerFrame is below the kernel's SCM_MAX_FD (253).
	maxFdsPerFrame = 250
	// maxFilesPayload keeps a files frame well inside a socket buffer.
	maxFilesPayload = 256 << 10
	maxStateChunk   = 64 << 10
	maxKeyLen       = 4096
	maxMetaLen      = 64 << 10
)

var helloMagic = [5]byte{'T', 'F', 'L', 'I', 'P'}

// Frame types.
const (
	frameHello byte = 'H' // both ways, first: magic, version, pid, generation
	frameFiles byte = 'F' // parent->child: records of the files attached
	frameState byte = 'S' // parent->child: a chunk of application state
	frameEnd   byte = 'E' // parent->child: total file count; nothing follows
	frameReady byte = 'R' // child->parent: ready
	frameAck   byte = 'A' // parent->child: committed, the child is the service now
	frameFail  byte = 'X' // either way: failed, payload is the reason
	frameLeave byte = 'L' // child->parent, after the ack: it leaves on purpose (handed over, or stops)
)

type frame struct {
	typ     byte
	nfds    int
	payload []byte
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// appendFrame encodes one frame.
func appendFrame(b []byte, typ byte, nfds int, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(nfds))
	return append(b, payload...)
}

// readFrame decodes one frame from r. A clean end of input before the first
// byte is io.EOF; anything else that is cut short is a protocol error.
func readFrame(r io.Reader) (frame, error) {
	var hdr [frameHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return frame{}, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return frame{}, protoErr("truncated frame header")
		}
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[0:4])
	f := frame{typ: hdr[4], nfds: int(binary.BigEndian.Uint16(hdr[5:7]))}
	if n > maxFramePayload {
		return frame{}, protoErr("frame %q of %d bytes exceeds the limit of %d", f.typ, n, maxFramePayload)
	}
	if f.nfds > maxFdsPerFrame {
		return frame{}, protoErr("frame %q claims %d files, the limit is %d", f.typ, f.nfds, maxFdsPerFrame)
	}
	if f.nfds > 0 && f.typ != frameFiles {
		return frame{}, protoErr("frame %q may not carry files", f.typ)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			return frame{}, protoErr("truncated frame %q: want %d bytes", f.typ, n)
		}
		return frame{}, err
	}
	return f, nil
}

type hello struct {
	version    uint16
	pid        int
	generation int
}

func encodeHello(h hello) []byte {
	b := append([]byte(nil), helloMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, h.version)
	b = binary.BigEndian.AppendUint32(b, uint32(h.pid))
	b = binary.BigEndian.AppendUint32(b, uint32(h.generation))
	return b
}

// decodeHello checks the magic and the version before anything else, so
// that a peer of another version is refused with a versionError, never
// misread.
func decodeHello(f frame) (hello, error) {
	if f.typ != frameHello {
		return hello{}, protoErr("want hello, got frame %q", f.typ)
	}
	p := f.payload
	if len(p) < len(helloMagic)+2 || [5]byte(p[:5]) != helloMagic {
		return hello{}, protoErr("hello without the tableflip magic")
	}
	h := hello{version: binary.BigEndian.Uint16(p[5:7])}
	if h.version != protocolVersion {
		return h, &versionError{Ours: protocolVersion, Theirs: h.version}
	}
	if len(p) != 15 {
		return hello{}, protoErr("hello of %d bytes, want 15", len(p))
	}
	h.pid = int(binary.BigEndian.Uint32(p[7:11]))
	h.generation = int(binary.BigEndian.Uint32(p[11:15]))
	if h.generation < 1 || h.generation >= 1<<31-1 {
		return hello{}, protoErr("hello with generation %d", h.generation)
	}
	if h.pid < 1 || h.pid > 1<<31-1 {
		// A parent's pid is how its child knows it has one (HasParent).
		return hello{}, protoErr("hello with pid %d", h.pid)
	}
	return h, nil
}

// record describes one passed file; the file itself travels as SCM_RIGHTS.
type record struct {
	flags     byte
	transport string
	key       string
	meta      []byte
}

// Record flags.
const (
	// flagCompanion marks a file passed for one upgrade only
	// (Handoff.AddFile): the child's claim does not pass it on.
	flagCompanion byte = 1 << 0
	knownFlags         = flagCompanion
)

func recordLen(r record) int { return 1 + 1 + len(r.transport) + 2 + len(r.key) + 4 + len(r.meta) }

func appendRecord(b []byte, r record) []byte {
	b = append(b, r.flags)
	b = append(b, byte(len(r.transport)))
	b = append(b, r.transport...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.key)))
	b = append(b, r.key...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.meta)))
	return append(b, r.meta...)
}

func checkRecord(r record) error {
	switch {
	case r.transport == "" || len(r.transport) > 255:
		return fmt.Errorf("%w: transport name %q: want 1 to 255 bytes", ErrProtocol, r.transport)
	case len(r.key) > maxKeyLen:
		return fmt.Errorf("%w: key of %d bytes exceeds the limit of %d", ErrProtocol, len(r.key), maxKeyLen)
	case len(r.meta) > maxMetaLen:
		return fmt.Errorf("%w: metadata of %d bytes for %s:%s exceeds the limit of %d", ErrProtocol, len(r.meta), r.transport, r.key, maxMetaLen)
	}
	return nil
}

// decodeRecords parses the payload of a files frame that carried n files.
func decodeRecords(p []byte, n int) ([]record, error) {
	recs := make([]record, 0, n)
	for i := 0; i < n; i++ {
		var r record
		if len(p) < 2 {
			return nil, protoErr("files frame: record %d truncated", i)
		}
		r.flags = p[0]
		if r.flags&^knownFlags != 0 {
			return nil, protoErr("files frame: record %d: unknown flags %#x", i, r.flags)
		}
		tl := int(p[1])
		p = p[2:]
		if tl == 0 || len(p) < tl+2 {
			return nil, protoErr("files frame: record %d: bad transport name", i)
		}
		r.transport, p = string(p[:tl]), p[tl:]
		kl := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if kl > maxKeyLen || len(p) < kl+4 {
			return nil, protoErr("files frame: record %d: bad key", i)
		}
		r.key, p = string(p[:kl]), p[kl:]
		ml := int(binary.BigEndian.Uint32(p))
		p = p[4:]
		if ml > maxMetaLen || len(p) < ml {
			return nil, protoErr("files frame: record %d: bad metadata length", i)
		}
		if ml > 0 {
			r.meta = append([]byte(nil), p[:ml]...)
		}
		p = p[ml:]
		recs = append(recs, r)
	}
	if len(p) != 0 {
		return nil, protoErr("files frame: %d bytes after %d records", len(p), n)
	}
	return recs, nil
}

func decodeEnd(f frame) (int, error) {
	if len(f.payload) != 4 {
		return 0, protoErr("end frame of %d bytes, want 4", len(f.payload))
	}
	return int(binary.BigEndian.Uint32(f.payload)), nil
}

func entryName(transport, key string) string { return transport + "\x00" + key }
