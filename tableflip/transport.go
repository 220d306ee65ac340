package tableflip

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// A Transport knows one kind of inheritable file descriptor: how to create
// it, how to turn an inherited file back into a typed object, and what
// metadata that needs. Transport packages register themselves with Register
// (usually in init) so that programs configured by files or flags can open
// "tcp://:8080" or "unix:///run/app.sock" by name.
//
// Open returns the typed object: a net.Listener, net.PacketConn, net.Conn,
// *os.File or a richer type of the transport's own. It claims the inherited
// file under the address's key if the parent passed one, and otherwise
// creates the object and passes its file on with fds.Pass.
type Transport interface {
	// Name is the scheme the transport registers under ("tcp").
	Name() string
	// Open opens address (the part after "scheme://").
	Open(ctx context.Context, fds Fds, address string) (io.Closer, error)
}

// Kind is the kind of object a transport's Open returns.
type Kind int

const (
	// KindOther is neither of the two below: a net.Conn, an *os.File or
	// a type of the transport's own.
	KindOther      Kind = iota
	KindListener        // a net.Listener
	KindPacketConn      // a net.PacketConn
)

func (k Kind) String() string {
	switch k {
	case KindListener:
		return "net.Listener"
	case KindPacketConn:
		return "net.PacketConn"
	}
	return "other"
}

// Kinder is an optional interface of a Transport that says what its Open
// returns, so that Listen and ListenPacket refuse a scheme of the wrong kind
// before anything is created, and passed on to later generations.
type Kinder interface {
	Kind() Kind
}

// Unclaimer is an optional interface of a Transport. When a generation
// becomes ready, Unclaimed is called for every file of the transport that the
// parent passed and nobody claimed (the configuration no longer names it),
// just before the file is closed: the unix transport unlinks the socket's
// path there, since no generation will serve it any more.
type Unclaimer interface {
	Unclaimed(key string, meta []byte)
}

var registry = struct {
	sync.RWMutex
	m map[string]Transport
}{m: make(map[string]Transport)}

// Register makes t available under t.Name(). Registering a second transport
// under a taken name is an error wrapping ErrDuplicate.
func Register(t Transport) error {
	name := t.Name()
	if name == "" || strings.ContainsAny(name, ":/") {
		return fmt.Errorf("%w: invalid transport name %q", ErrUnknownTransport, name)
	}
	registry.Lock()
	defer registry.Unlock()
	if _, ok := registry.m[name]; ok {
		return fmt.Errorf("%w: transport %q already registered", ErrDuplicate, name)
	}
	registry.m[name] = t
	return nil
}

// MustRegister is Register that panics on error, for init functions.
func MustRegister(t Transport) {
	if err := Register(t); err != nil {
		panic(err)
	}
}

// Lookup returns the transport registered under name.
func lookup(name string) (Transport, bool) {
	registry.RLock()
	defer registry.RUnlock()
	t, ok := registry.m[name]
	return t, ok
}

// Transports lists the registered transport names, sorted.
func transports() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// splitAddress splits "scheme://address" into its parts.
func splitAddress(uri string) (scheme, address string, err error) {
	scheme, address, ok := strings.Cut(uri, "://")
	if !ok || scheme == "" {
		return "", "", fmt.Errorf("%w: address %q: want scheme://address", ErrUnknownTransport, uri)
	}
	return scheme, address, nil
}

// Open opens uri ("scheme://address") with the transport registered for
// its scheme. The transport package must have been imported.
func Open(ctx context.Context, fds Fds, uri string) (io.Closer, error) {
	t, address, err := lookupURI(uri)
	if err != nil {
		return nil, err
	}
	return t.Open(ctx, fds, address)
}

// lookupURI splits uri and finds the transport registered for its scheme.
func lookupURI(uri string) (Transport, string, error) {
	scheme, address, err := splitAddress(uri)
	if err != nil {
		return nil, "", err
	}
	t, ok := lookup(scheme)
	if !ok {
		return nil, "", fmt.Errorf("%w %q in %q (registered: %s; is its package imported?)",
			ErrUnknownTransport, scheme, uri, strings.Join(transports(), ", "))
	}
	return t, address, nil
}

// Listen opens uri and returns it as a net.Listener.
func Listen(ctx context.Context, fds Fds, uri string) (net.Listener, error) {
	return openAs[net.Listener](ctx, fds, uri, KindListener)
}

// ListenPacket opens uri and returns it as a net.PacketConn.
func ListenPacket(ctx context.Context, fds Fds, uri string) (net.PacketConn, error) {
	return openAs[net.PacketConn](ctx, fds, uri, KindPacketConn)
}

func openAs[T any](ctx context.Context, fds Fds, uri string, want Kind) (T, error) {
	var zero T
	t, address, err := lookupURI(uri)
	if err != nil {
		return zero, err
	}
	if k, ok := t.(Kinder); ok && k.Kind() != want {
		return zero, fmt.Errorf("%w: %q opens a %s, not a %s", ErrUnknownTransport, uri, k.Kind(), want)
	}
	// The transport may claim, pass and hook before it returns an object
	// of the wrong kind: all of that is undone then, so that a retry with
	// the right call finds the name free and the inherited file back.
	tx := &txFds{Fds: fds}
	c, err := t.Open(ctx, tx, address)
	if err != nil {
		return zero, err
	}
	v, ok := c.(T)
	if !ok {
		c.Close()
		tx.rollback()
		return zero, fmt.Errorf("%w: %q opens a %T, not a %s", ErrUnknownTransport, uri, c, want)
	}
	return v, nil
}

// txFds records what a transport's Open does through it, to undo it.
type txFds struct {
	Fds
	mu      sync.Mutex
	claimed [][2]string
	passed  [][2]string
	removes []func()
}

func (t *txFds) Inherit(transport, key string) (*os.File, []byte, error) {
	f, meta, err := t.Fds.Inherit(transport, key)
	if err == nil {
		t.mu.Lock()
		t.claimed = append(t.claimed, [2]string{transport, key})
		t.mu.Unlock()
	}
	return f, meta, err
}

func (t *txFds) Pass(transport, key string, c syscall.Conn, meta []byte) error {
	err := t.Fds.Pass(transport, key, c, meta)
	if err == nil {
		t.mu.Lock()
		t.passed = append(t.passed, [2]string{transport, key})
		t.mu.Unlock()
	}
	return err
}

func (t *txFds) AddHooks(h Hooks) (remove func()) {
	remove = t.Fds.AddHooks(h)
	t.mu.Lock()
	t.removes = append(t.removes, remove)
	t.mu.Unlock()
	return remove
}

// rollback forgets what was passed, puts back what was claimed (on an
// *Upgrader; another Fds forgets it) and removes the hooks.
func (t *txFds) rollback() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range t.passed {
		t.Fds.Forget(n[0], n[1])
	}
	for _, n := range t.claimed {
		if u, ok := t.Fds.(*Upgrader); ok {
			u.unclaim(n[0], n[1])
		} else {
			t.Fds.Forget(n[0], n[1])
		}
	}
	for _, remove := range t.removes {
		remove()
	}
}
