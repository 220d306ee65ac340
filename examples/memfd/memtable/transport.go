package memtable

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
)

// Scheme is the transport's name: files are passed under it, and
// "memfd://NAME?slots=N" addresses open a table through the registry.
const Scheme = "memfd"

// DefaultSlots is the size of a new table when Options.Slots is zero.
const DefaultSlots = 4096

var (
	// ErrNotSupported is returned on systems without memfd (all but
	// Linux).
	ErrNotSupported = errors.New("memtable: memfd is not supported on this platform (Linux only)")
	// ErrNotOwner is returned by writes in a generation that does not own
	// the table: it is handing the table over to the next generation, or
	// has handed it over, or inherited it and is not ready yet.
	ErrNotOwner = errors.New("memtable: this generation does not own the table")
	// ErrFull is returned by a write of a new key into a full table.
	ErrFull = errors.New("memtable: table full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("memtable: table closed")
	// ErrTorn is returned by a read that kept finding a write half done:
	// a process stopped in the middle of a write.
	ErrTorn = errors.New("memtable: a write was left half done")
)

func errorf(format string, args ...any) error {
	return fmt.Errorf("memtable: "+format, args...)
}

// Step 1: the transport, registered under its scheme, so that programs
// configured by name can open "memfd://counters".

func init() {
	tableflip.MustRegister(transport{})
}

type transport struct{}

func (transport) Name() string { return Scheme }

// Open opens "NAME" or "NAME?slots=N".
func (transport) Open(ctx context.Context, fds tableflip.Fds, address string) (io.Closer, error) {
	name, query, _ := strings.Cut(address, "?")
	var opts Options
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, errorf("address %q: %w", address, err)
		}
		if s := q.Get("slots"); s != "" {
			if opts.Slots, err = strconv.Atoi(s); err != nil {
				return nil, errorf("address %q: slots: %w", address, err)
			}
		}
	}
	return Open(ctx, fds, name, opts)
}

// Step 2: the typed object, and Open, which inherits the table the
// previous generation passed under the same name, or creates it, and
// passes it on.

// Options configure a new table.
type Options struct {
	// Slots is the number of entries a new table has room for. An
	// inherited table keeps the size it was made with. Zero means
	// DefaultSlots.
	Slots int
}

// Table is a fixed-size map from short strings to uint64 in a memfd that
// the next generation inherits without copying: it maps the same memory.
// Exactly one generation writes at a time; every generation may read.
type Table struct {
	name   string
	fds    tableflip.Fds
	log    *zap.Logger
	info   Info
	remove func() // removes the hooks

	mu     sync.RWMutex // writers and Close exclude readers of this process
	t      table
	owner  bool // this generation may write
	closed bool
}

// Info describes a table.
type Info struct {
	// Name is the table's name (the key it is passed under).
	Name string
	// Slots is the table's size.
	Slots int
	// Inode identifies the memfd: the same in every generation, since
	// they all map the same memory.
	Inode uint64
	// Inherited is true when the previous generation handed the table
	// over; its checksum was then verified.
	Inherited bool
}

// Open returns the table called name: the previous generation's, mapped
// and verified, if it passed one; a new, empty one otherwise. Either way
// the table is passed to the next generation. Open an inherited table
// before calling Ready (the upgrader closes unclaimed files then); it
// becomes writable when this generation is ready.
func Open(ctx context.Context, fds tableflip.Fds, name string, opts Options) (*Table, error) {
	if !supported {
		return nil, ErrNotSupported
	}
	if name == "" || len(name) > 200 {
		return nil, errorf("table name %q: want 1 to 200 bytes", name)
	}
	if opts.Slots == 0 {
		opts.Slots = DefaultSlots
	}
	if opts.Slots < 1 || opts.Slots > MaxSlots {
		return nil, errorf("table %q: %d slots, want 1 to %d", name, opts.Slots, MaxSlots)
	}
	t := &Table{name: name, fds: fds, log: fds.Logger().With(zap.String("table", name))}
	f, meta, err := fds.Inherit(Scheme, name)
	switch {
	case err == nil:
		err = t.inherit(f, meta)
		f.Close() // the mapping keeps the memory alive
		if err != nil {
			// Claimed but unusable: stop passing it on.
			fds.Forget(Scheme, name)
			return nil, err
		}
		if int(t.t.slots) != opts.Slots {
			t.log.Warn("inherited table keeps its size", zap.Uint64("slots", t.t.slots), zap.Int("asked", opts.Slots))
		}
	case errors.Is(err, tableflip.ErrNotInherited):
		if err := t.create(opts.Slots); err != nil {
			return nil, err
		}
	default:
		return nil, errorf("table %q: %w", name, err)
	}
	t.remove = fds.AddHooks(tableflip.Hooks{
		Prepare: t.prepare,
		Done:    t.done,
		Ready:   t.ready,
	})
	return t, nil
}

func (t *Table) create(slots int) error {
	f, mem, err := createMemfd(t.name, regionSize(slots))
	if err != nil {
		return errorf("create table %q: %w", t.name, err)
	}
	defer f.Close()
	t.t = initTable(mem, slots)
	// Until the first upgrade, the metadata says only the size: the
	// Prepare hook sends the checksum when it hands the table over.
	if err := t.fds.Pass(Scheme, t.name, f, encodeMeta(meta{slots: uint64(slots)})); err != nil {
		unmap(mem)
		return errorf("table %q: %w", t.name, err)
	}
	t.owner = true
	t.info = Info{Name: t.name, Slots: slots, Inode: inodeOf(f)}
	return nil
}

// Step 3: the metadata that travels with the memfd: the layout, and the
// checksum of the memory at the moment the parent handed it over.

type meta struct {
	slots      uint64
	handedOver bool // the parent stopped writing; sum is valid
	sum        [32]byte
}

const metaVersion = 1

func encodeMeta(m meta) []byte {
	b := []byte{metaVersion, 0}
	if m.handedOver {
		b[1] = 1
	}
	b = binary.LittleEndian.AppendUint64(b, m.slots)
	return append(b, m.sum[:]...)
}

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) != 42 || b[0] != metaVersion || b[1] > 1 {
		return m, errorf("metadata of %d bytes is not version %d's 42", len(b), metaVersion)
	}
	m.handedOver = b[1] == 1
	m.slots = binary.LittleEndian.Uint64(b[2:])
	copy(m.sum[:], b[10:])
	return m, nil
}

func (t *Table) inherit(f *os.File, b []byte) error {
	m, err := decodeMeta(b)
	if err != nil {
		return errorf("inherited table %q: %w", t.name, err)
	}
	if !m.handedOver {
		return errorf("inherited table %q: the previous generation did not hand it over (its Prepare hook did not run)", t.name)
	}
	mem, err := mapMemfd(f)
	if err != nil {
		return errorf("inherited table %q: %w", t.name, err)
	}
	t.t, err = checkTable(mem)
	if err == nil && t.t.slots != m.slots {
		err = errorf("%d slots, the metadata says %d", t.t.slots, m.slots)
	}
	if err == nil && sha256.Sum256(mem) != m.sum {
		err = errorf("checksum mismatch: the memory changed after the previous generation handed it over")
	}
	if err != nil {
		unmap(mem)
		return errorf("inherited table %q: %w", t.name, err)
	}
	// Not the owner until Ready: if this generation fails before, the
	// parent takes the table back, unchanged.
	t.info = Info{Name: t.name, Slots: int(t.t.slots), Inode: inodeOf(f), Inherited: true}
	return nil
}

// Step 4: the hooks. Who writes when:
//   - Prepare (old generation, upgrade starting): stop writing, and send
//     the checksum of the memory as it is now.
//   - Ready (new generation): start writing.
//   - Done (old generation, upgrade over): on failure, write again; on
//     success, never again.

func (t *Table) prepare(ctx context.Context, h *tableflip.Handoff) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.owner = false // waits for the writes in flight: they hold mu
	h.SetMeta(Scheme, t.name, encodeMeta(meta{slots: t.t.slots, handedOver: true, sum: sha256.Sum256(t.t.mem)}))
	return nil
}

func (t *Table) done(pid int, err error) {
	if err == nil {
		t.log.Info("table handed over", zap.Int("child_pid", pid))
		return
	}
	t.mu.Lock()
	t.owner = !t.closed
	t.mu.Unlock()
}

func (t *Table) ready() {
	t.mu.Lock()
	t.owner = !t.closed
	t.mu.Unlock()
}

// Step 5: reading and writing.

// Get returns the value of key.
func (t *Table) Get(key string) (v uint64, ok bool, err error) {
	err = t.read(func() { v, ok = t.t.get(key) })
	return v, ok, err
}

// Set stores value under key.
func (t *Table) Set(key string, value uint64) error {
	return t.write(key, func() error { return t.t.set(key, value) })
}

// Add adds delta to the value of key (0 if absent) and returns the sum.
func (t *Table) Add(key string, delta uint64) (sum uint64, err error) {
	err = t.write(key, func() error {
		v, _ := t.t.get(key)
		sum = v + delta
		return t.t.set(key, sum)
	})
	return sum, err
}

// Len is the number of entries.
func (t *Table) Len() (n int, err error) {
	err = t.read(func() { n = int(t.t.entries()) })
	return n, err
}

// Snapshot returns every entry, as one consistent view.
func (t *Table) Snapshot() (map[string]uint64, error) {
	var m map[string]uint64
	err := t.read(func() {
		m = make(map[string]uint64)
		t.t.each(func(k string, v uint64) { m[k] = v })
	})
	return m, err
}

// Info describes the table.
func (t *Table) Info() Info { return t.info }

// Owner reports whether this generation may write.
func (t *Table) Owner() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.owner
}

func (t *Table) write(key string, fn func() error) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return errorf("key of %d bytes, want 1 to %d", len(key), MaxKeyLen)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return ErrClosed
	case !t.owner:
		return ErrNotOwner
	}
	seq := t.t.seq()
	seq.Add(1) // odd: readers of other generations retry
	defer seq.Add(1)
	return fn()
}

// read runs fn until it has seen no write in progress (another
// generation's writes take no lock of this process).
func (t *Table) read(fn func()) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	seq := t.t.seq()
	var deadline time.Time
	for {
		s := seq.Load()
		if s&1 == 0 {
			fn()
			if seq.Load() == s {
				return nil
			}
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(time.Second)
		} else if time.Now().After(deadline) {
			return ErrTorn
		}
		runtime.Gosched()
	}
}

// Step 6: Close.

// Close unmaps the table and stops passing it on: the memory is freed
// once no generation maps it. Call it when this generation exits (after
// its successor is ready, the successor holds the table) or to drop the
// table for good. Close is idempotent.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed, t.owner = true, false
	t.remove()
	t.fds.Forget(Scheme, t.name)
	return unmap(t.t.mem)
}
