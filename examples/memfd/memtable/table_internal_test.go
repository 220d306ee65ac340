package memtable

import (
	"errors"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	m := meta{slots: 12, handedOver: true}
	m.sum[3] = 9
	got, err := decodeMeta(encodeMeta(m))
	if err != nil || got != m {
		t.Fatalf("%+v %v, want %+v", got, err, m)
	}
	for _, b := range [][]byte{nil, {1}, {2, 0}, append([]byte{1, 2}, make([]byte, 40)...)} {
		if _, err := decodeMeta(b); err == nil || !strings.HasPrefix(err.Error(), "memtable: ") {
			t.Errorf("%x: %v", b, err)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(meta{slots: 1}))
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err == nil && string(encodeMeta(m)) != string(b) {
			t.Fatalf("decode then encode changed %x", b)
		}
	})
}

// A region that is not a table is refused, whatever its bytes, and a
// table's probes stay in bounds whatever its slots hold.
func FuzzCheckTable(f *testing.F) {
	mem := make([]byte, regionSize(2))
	initTable(mem, 2).set("a", 1)
	f.Add(mem)
	f.Add([]byte("tfmemtb1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := checkTable(b)
		if err != nil {
			return
		}
		tb.get("a")
		tb.each(func(string, uint64) {})
	})
}

func TestTable(t *testing.T) {
	mem := make([]byte, regionSize(4))
	tb := initTable(mem, 4)
	for i, k := range []string{"a", "b", "c", "d"} {
		if err := tb.set(k, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.set("e", 5); err != ErrFull {
		t.Fatalf("fifth key in four slots: %v", err)
	}
	if err := tb.set("c", 30); err != nil {
		t.Fatal(err)
	}
	again, err := checkTable(mem)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := again.get("c"); !ok || v != 30 || again.entries() != 4 {
		t.Fatalf("c=%d %v, %d entries", v, ok, again.entries())
	}
	mem[8] = 2
	if _, err := checkTable(mem); !errors.Is(err, ErrBadTable) {
		t.Fatalf("other layout: %v", err)
	}
}
