package memtable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"sync/atomic"
	"unsafe"
)

// The table is plain Go over a []byte, so that it can live in any shared
// memory. Nothing in this file knows about tableflip.
//
// Layout (integers little endian):
//
//	header, 64 bytes
//	   0  magic "tfmemtb1"
//	   8  layout version, uint32
//	  12  slot size, uint32 (64)
//	  16  number of slots, uint64
//	  24  sequence, uint64: odd while a write is in progress (a seqlock,
//	      so that readers in another process see whole writes only)
//	  32  number of entries, uint64
//	slots, 64 bytes each, open addressing with linear probing
//	   0  used, uint8
//	   1  key length, uint8
//	   2  key, up to MaxKeyLen bytes
//	  48  value, uint64
const (
	headerSize    = 64
	slotSize      = 64
	layoutVersion = 1
	magic         = "tfmemtb1"

	// MaxKeyLen is the longest key a table holds.
	MaxKeyLen = 46
	// MaxSlots bounds the size of a table (64 bytes a slot).
	MaxSlots = 1 << 24
)

// ErrBadTable is wrapped by the error of an inherited memory that holds no
// table this program reads (another layout version, say).
var ErrBadTable = errors.New("memtable: not a table this program reads")

func regionSize(slots int) int { return headerSize + slots*slotSize }

// table is a view of a region; the caller serializes writers.
type table struct {
	mem   []byte
	slots uint64
}

// initTable writes an empty table's header into a zeroed region.
func initTable(mem []byte, slots int) table {
	copy(mem, magic)
	binary.LittleEndian.PutUint32(mem[8:], layoutVersion)
	binary.LittleEndian.PutUint32(mem[12:], slotSize)
	binary.LittleEndian.PutUint64(mem[16:], uint64(slots))
	return table{mem: mem, slots: uint64(slots)}
}

// checkTable validates the header of a region written by initTable.
func checkTable(mem []byte) (table, error) {
	if len(mem) < headerSize || string(mem[:8]) != magic {
		return table{}, fmt.Errorf("%w: the memory holds no table (bad magic)", ErrBadTable)
	}
	if v := binary.LittleEndian.Uint32(mem[8:]); v != layoutVersion {
		return table{}, fmt.Errorf("%w: table layout version %d, this program reads %d", ErrBadTable, v, layoutVersion)
	}
	if s := binary.LittleEndian.Uint32(mem[12:]); s != slotSize {
		return table{}, fmt.Errorf("%w: slot size %d, this program reads %d", ErrBadTable, s, slotSize)
	}
	slots := binary.LittleEndian.Uint64(mem[16:])
	if slots == 0 || slots > MaxSlots || uint64(len(mem)) != uint64(regionSize(int(slots))) {
		return table{}, errorf("%d slots do not fit %d bytes", slots, len(mem))
	}
	return table{mem: mem, slots: slots}, nil
}

func (t table) seq() *atomic.Uint64 {
	// The region is page aligned, so offset 24 is 8-byte aligned.
	return (*atomic.Uint64)(unsafe.Pointer(&t.mem[24]))
}

func (t table) entries() uint64 { return binary.LittleEndian.Uint64(t.mem[32:]) }

func (t table) slot(i uint64) []byte {
	off := headerSize + i*slotSize
	return t.mem[off : off+slotSize]
}

// find returns the slot that holds key, or the empty slot where it would
// go; full is true when neither exists.
func (t table) find(key string) (i uint64, found, full bool) {
	h := fnv.New64a()
	h.Write([]byte(key))
	i = h.Sum64() % t.slots
	for range t.slots {
		s := t.slot(i)
		if s[0] == 0 {
			return i, false, false
		}
		// A reader may see a slot mid-write; the seqlock makes it
		// retry, and the clamp keeps the torn length in bounds.
		if n := min(int(s[1]), MaxKeyLen); n == len(key) && string(s[2:2+n]) == key {
			return i, true, false
		}
		i = (i + 1) % t.slots
	}
	return 0, false, true
}

func (t table) get(key string) (uint64, bool) {
	i, found, _ := t.find(key)
	if !found {
		return 0, false
	}
	return binary.LittleEndian.Uint64(t.slot(i)[48:]), true
}

// set stores key; the caller holds the write side of the seqlock.
func (t table) set(key string, v uint64) error {
	i, found, full := t.find(key)
	if full {
		return ErrFull
	}
	s := t.slot(i)
	if !found {
		s[1] = byte(len(key))
		copy(s[2:2+MaxKeyLen], key)
		s[0] = 1
		binary.LittleEndian.PutUint64(t.mem[32:], t.entries()+1)
	}
	binary.LittleEndian.PutUint64(s[48:], v)
	return nil
}

func (t table) each(fn func(key string, v uint64)) {
	for i := range t.slots {
		s := t.slot(i)
		if s[0] != 0 {
			n := min(int(s[1]), MaxKeyLen)
			fn(string(s[2:2+n]), binary.LittleEndian.Uint64(s[48:]))
		}
	}
}
