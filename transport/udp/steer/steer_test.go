package steer

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func testCodec() *Codec {
	return NewCodec([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
}

func TestCodecRoundTrip(t *testing.T) {
	c := testCodec()
	for _, tag := range []uint8{0, 1, 2, 200, 255} {
		id := make([]byte, IDLen)
		if err := c.Generate(id, tag); err != nil {
			t.Fatal(err)
		}
		got, ok := c.Tag(id)
		if !ok || got != tag {
			t.Errorf("Tag(Generate(%d)) = %d, %v", tag, got, ok)
		}
		// Any flipped bit breaks the check (or changes nothing else).
		for i := range IDLen * 8 {
			bad := bytes.Clone(id)
			bad[i/8] ^= 1 << (i % 8)
			if _, ok := c.Tag(bad); ok {
				t.Errorf("tag %d: ID with bit %d flipped passes the check", tag, i)
			}
		}
		if _, ok := NewCodec([16]byte{9}).Tag(id); ok {
			t.Errorf("tag %d: the ID passes another secret's check", tag)
		}
		if _, ok := c.Tag(append(id, 0)); ok {
			t.Errorf("tag %d: a 9-byte ID passes", tag)
		}
	}
	if err := c.Generate(make([]byte, IDLen-1), 1); err != ErrShortID {
		t.Errorf("Generate into 7 bytes: %v, want ErrShortID", err)
	}
}

// A client's random Initial DCID passes the 24-bit check with probability
// 2^-24: about 0.06 in a million.
func TestCodecRandomIDsRejected(t *testing.T) {
	c := testCodec()
	const n = 1_000_000
	buf := make([]byte, n*IDLen)
	rand.Read(buf)
	passed := 0
	for i := range n {
		if _, ok := c.Tag(buf[i*IDLen : (i+1)*IDLen]); ok {
			passed++
		}
	}
	if passed > 3 {
		t.Errorf("%d of %d random IDs pass the check, want about 0.06", passed, n)
	}
}

func TestCodecIDsDiffer(t *testing.T) {
	c := testCodec()
	seen := map[string]bool{}
	for range 10000 {
		id := make([]byte, IDLen)
		c.Generate(id, 7)
		if seen[string(id)] {
			t.Fatalf("ID %x made twice", id)
		}
		seen[string(id)] = true
	}
}

func TestClassify(t *testing.T) {
	dcid := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	long := append([]byte{0xc0, 0, 0, 0, 1, 8}, dcid...)
	long = append(long, 0, 1, 2) // SCID length and more
	for _, tc := range []struct {
		name string
		p    []byte
		kind Kind
		dcid []byte
	}{
		{"empty", nil, KindInvalid, nil},
		{"short header, 1 byte", []byte{0x40}, KindInvalid, nil},
		{"short header, ID truncated", append([]byte{0x40}, dcid[:7]...), KindInvalid, nil},
		{"short header, exactly the ID", append([]byte{0x40}, dcid...), KindShort, dcid},
		{"short header", append(append([]byte{0x41}, dcid...), 9, 9, 9), KindShort, dcid},
		{"long header, no version", []byte{0xc0, 0, 0}, KindInvalid, nil},
		{"long header, no DCID length", []byte{0xc0, 0, 0, 0, 1}, KindInvalid, nil},
		{"long header, DCID truncated", long[:10], KindInvalid, nil},
		{"long header", long, KindLong, dcid},
		{"long header, 20-byte DCID length, 3 bytes", []byte{0xc0, 0, 0, 0, 1, 20, 1, 2, 3}, KindInvalid, nil},
		{"long header, zero-length DCID", []byte{0xc0, 0, 0, 0, 1, 0}, KindLong, []byte{}},
		{"long header, other version", append([]byte{0xc0, 0x6b, 0x33, 0x43, 0xcf, 8}, dcid...), KindLong, dcid},
		{"version negotiation", append([]byte{0x80, 0, 0, 0, 0, 8}, dcid...), KindVersionNegotiation, dcid},
		{"long header, DCID length 255", append([]byte{0xc0, 0, 0, 0, 1, 255}, make([]byte, 255)...), KindLong, make([]byte, 255)},
	} {
		kind, got := Classify(tc.p)
		if kind != tc.kind || !bytes.Equal(got, tc.dcid) {
			t.Errorf("%s: Classify = %v, %x; want %v, %x", tc.name, kind, got, tc.kind, tc.dcid)
		}
	}
}

func TestDecide(t *testing.T) {
	c := testCodec()
	id := func(tag uint8) []byte {
		b := make([]byte, IDLen)
		c.Generate(b, tag)
		return b
	}
	short := func(dcid []byte) []byte { return append(append([]byte{0x40}, dcid...), make([]byte, 30)...) }
	long := func(dcid []byte) []byte {
		return append(append([]byte{0xc0, 0, 0, 0, 1, byte(len(dcid))}, dcid...), make([]byte, 30)...)
	}
	live := func(tag uint8) bool { return tag == 1 || tag == 3 }
	const own = 2
	random := make([]byte, IDLen)
	rand.Read(random)
	for _, tc := range []struct {
		name string
		p    []byte
		want route
	}{
		{"short, own tag", short(id(own)), routeLocal},
		{"short, live older generation", short(id(1)), 1},
		{"long (Handshake), live newer generation", long(id(3)), 3},
		{"short, exited generation", short(id(9)), routeGone},
		{"long, exited generation: never reset, ours", long(id(9)), routeLocal},
		{"Initial with a client's random ID", long(random), routeLocal},
		{"short with a random ID: dropped", short(random), routeDrop},
		{"Initial with a 20-byte ID", long(make([]byte, 20)), routeLocal},
		{"version negotiation tagged with a live generation", append([]byte{0x80, 0, 0, 0, 0, 8}, id(1)...), routeLocal},
		{"garbage", []byte{0x40, 1}, routeLocal},
	} {
		if got, _ := decide(c, own, tc.p, live); got != tc.want {
			t.Errorf("%s: route %d, want %d", tc.name, got, tc.want)
		}
	}
}

// FuzzClassify: any bytes give a kind and a DCID inside the datagram,
// never a panic; and the routing decision never panics either.
func FuzzClassify(f *testing.F) {
	c := testCodec()
	id := make([]byte, IDLen)
	c.Generate(id, 1)
	f.Add(append([]byte{0x40}, id...))
	f.Add(append([]byte{0xc0, 0, 0, 0, 1, 8}, id...))
	f.Add([]byte{0x80, 0, 0, 0, 0, 255})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		kind, dcid := Classify(p)
		switch kind {
		case KindInvalid:
			if dcid != nil {
				t.Fatalf("invalid datagram with a DCID %x", dcid)
			}
		case KindShort:
			if len(dcid) != IDLen || !bytes.Equal(dcid, p[1:1+IDLen]) {
				t.Fatalf("short header: DCID %x of %x", dcid, p)
			}
		case KindLong, KindVersionNegotiation:
			if len(p) < 6 || len(dcid) != int(p[5]) || !bytes.Equal(dcid, p[6:6+len(dcid)]) {
				t.Fatalf("long header: DCID %x of %x", dcid, p)
			}
		}
		decide(c, 2, p, func(tag uint8) bool { return tag%2 == 1 })
	})
}

func BenchmarkClassify(b *testing.B) {
	c := testCodec()
	id := make([]byte, IDLen)
	c.Generate(id, 1)
	p := append(append([]byte{0x40}, id...), make([]byte, 1200)...)
	live := func(tag uint8) bool { return tag == 1 }
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := decide(c, 2, p, live); r != 1 {
			b.Fatal(r)
		}
	}
}
