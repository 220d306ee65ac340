package tlstransport

import (
	"bytes"
	"crypto/tls"
	"strings"
	"testing"
	"time"
)

func TestTicketKeysRoundTrip(t *testing.T) {
	keys := []ticketKey{{created: time.Unix(100, 5)}, {created: time.Unix(50, 0)}}
	keys[0].key[0], keys[1].key[31] = 1, 2
	got, err := decodeTicketKeys(encodeTicketKeys(keys))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].key != keys[0].key || got[1].key != keys[1].key ||
		!got[0].created.Equal(keys[0].created) || !got[1].created.Equal(keys[1].created) {
		t.Fatalf("round trip: %v, want %v", got, keys)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "want at least 3"},
		{"other version", []byte{9, 0, 0}, "layout version 9"},
		{"truncated", encodeTicketKeys(keys)[:50], "47 bytes for 2 keys"},
		{"too many", []byte{1, 0xff, 0xff}, "limit is 1024"},
	} {
		if _, err := decodeTicketKeys(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tlstransport: ") {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}

// Once the keys are snapshotted for a child, rotation waits until the
// upgrade has failed; a ring made from the snapshot has the same keys.
func TestSnapshotFreezesRotation(t *testing.T) {
	now := time.Unix(1000, 0)
	opts, err := TicketOptions{Rotation: time.Hour, Lifetime: 2 * time.Hour, Now: func() time.Time { return now }}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r, err := newTicketRing(opts, &tls.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := r.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	r.rotate()
	if len(r.info()) != 1 {
		t.Fatal("rotated while frozen")
	}
	inherited, err := decodeTicketKeys(meta)
	if err != nil {
		t.Fatal(err)
	}
	child, err := newTicketRing(opts, &tls.Config{}, inherited)
	if err != nil {
		t.Fatal(err)
	}
	// The child's clock says the key is due: it rotates, and keeps the
	// parent's key for decryption.
	if ci, pi := child.info(), r.info(); len(ci) != 2 || ci[1] != pi[0] {
		t.Fatalf("child keys %v, parent keys %v", ci, pi)
	}
	r.freeze(false)
	r.rotate()
	if len(r.info()) != 2 {
		t.Fatal("did not rotate after the freeze ended")
	}
}

func TestTicketOptionsInvalid(t *testing.T) {
	for _, o := range []TicketOptions{
		{Rotation: -1},
		{Rotation: time.Hour, Lifetime: time.Minute},
		{Rotation: time.Second, Lifetime: 2000 * time.Second},
	} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func FuzzDecodeTicketKeys(f *testing.F) {
	f.Add(encodeTicketKeys([]ticketKey{{created: time.Unix(1, 0)}}))
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{1, 0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := decodeTicketKeys(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeTicketKeys(keys), b) {
			t.Fatalf("decode then encode changed %x", b)
		}
	})
}
