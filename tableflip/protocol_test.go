package tableflip

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	recs := []record{
		{transport: "tcp", key: "127.0.0.1:0"},
		{transport: "unix", key: "/run/app.sock", meta: []byte{0, 1, 2}},
		{transport: "memfd", key: "table", meta: bytes.Repeat([]byte("m"), maxMetaLen)},
	}
	var payload []byte
	for _, r := range recs {
		payload = appendRecord(payload, r)
	}
	var b []byte
	b = appendFrame(b, frameHello, 0, encodeHello(hello{version: protocolVersion, pid: 42, generation: 7}))
	b = appendFrame(b, frameFiles, len(recs), payload)
	r := bytes.NewReader(b)
	f, err := readFrame(r)
	if err != nil {
		t.Fatal(err)
	}
	h, err := decodeHello(f)
	if err != nil || h.pid != 42 || h.generation != 7 {
		t.Fatalf("hello %+v %v", h, err)
	}
	f, err = readFrame(r)
	if err != nil || f.nfds != 3 {
		t.Fatalf("files frame %+v %v", f, err)
	}
	got, err := decodeRecords(f.payload, f.nfds)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if got[i].transport != recs[i].transport || got[i].key != recs[i].key || !bytes.Equal(got[i].meta, recs[i].meta) {
			t.Fatalf("record %d: %+v, want %+v", i, got[i], recs[i])
		}
	}
	if _, err := readFrame(r); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestHelloVersionIsCheckedFirst(t *testing.T) {
	t.Parallel()
	// A future version may change everything after the version field; it
	// must still be refused as a version mismatch, not misread.
	p := append(append([]byte(nil), helloMagic[:]...), 0, 2, 'x')
	_, err := decodeHello(frame{typ: frameHello, payload: p})
	var ve *versionError
	if !errors.As(err, &ve) || ve.Theirs != 2 || ve.Ours != protocolVersion || !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v", err)
	}
}

func TestCheckRecordLimits(t *testing.T) {
	t.Parallel()
	for _, r := range []record{
		{transport: ""},
		{transport: string(make([]byte, 256))},
		{transport: "tcp", key: string(make([]byte, maxKeyLen+1))},
		{transport: "tcp", meta: make([]byte, maxMetaLen+1)},
	} {
		if checkRecord(r) == nil {
			t.Errorf("record with transport %d bytes, key %d, meta %d accepted", len(r.transport), len(r.key), len(r.meta))
		}
	}
}

// FuzzReadFrames feeds arbitrary bytes to the child's decoder: hello, files
// (with a pretend number of attached files), state, end. It must return an
// error or a result, never panic or allocate without bound.
func FuzzReadFrames(f *testing.F) {
	hello := appendFrame(nil, frameHello, 0, encodeHello(hello{version: protocolVersion, pid: 1, generation: 1}))
	f.Add(hello, 0)
	f.Add(appendFrame(hello, frameFiles, 1, appendRecord(nil, record{transport: "tcp", key: ":80"})), 1)
	f.Add(appendFrame(appendFrame(hello, frameState, 0, []byte("state")), frameEnd, 0, []byte{0, 0, 0, 0}), 0)
	f.Add([]byte("TFLIP\x00\x02"), 0)
	f.Add(appendFrame(nil, frameFiles, 250, nil), 250)
	f.Add(appendFrame(hello, frameFiles, 1, appendRecord(nil, record{flags: flagCompanion, transport: "udp", key: "fwd"})), 1)
	f.Fuzz(func(t *testing.T, data []byte, attached int) {
		r := bytes.NewReader(data)
		for {
			fr, err := readFrame(r)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v does not wrap ErrProtocol", err)
				}
				return
			}
			if len(fr.payload) > maxFramePayload {
				t.Fatalf("payload of %d bytes accepted", len(fr.payload))
			}
			switch fr.typ {
			case frameHello:
				decodeHello(fr)
			case frameFiles:
				n := fr.nfds
				if attached >= 0 && attached < n {
					n = attached
				}
				if recs, err := decodeRecords(fr.payload, n); err == nil && len(recs) != n {
					t.Fatalf("%d records for %d files", len(recs), n)
				}
			case frameEnd:
				decodeEnd(fr)
			}
		}
	})
}
