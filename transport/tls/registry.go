package tlstransport

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/tableflip-go/tableflip/tableflip"
)

func init() {
	tableflip.MustRegister(defaultTransport)
}

var defaultTransport = &transport{scheme: TransportName}

// SetDefaultConfig sets the configuration that "tls://host:port" addresses
// open with (tableflip.Listen, tableflip.Open). Until it is called they fail
// with ErrNoConfig. Call it before opening them; later calls affect only
// later opens.
func SetDefaultConfig(cfg *Config) { defaultTransport.set(cfg) }

// NewTransport returns a transport that opens "scheme://host:port" as a TLS
// listener with cfg. Register it with tableflip.Register to serve several
// TLS configurations by name (for example "tls-admin").
func NewTransport(scheme string, cfg *Config) tableflip.Transport {
	t := &transport{scheme: scheme}
	t.set(cfg)
	return t
}

type transport struct {
	scheme string
	mu     sync.Mutex
	cfg    *Config
}

func (t *transport) set(cfg *Config) {
	t.mu.Lock()
	t.cfg = cfg
	t.mu.Unlock()
}

func (t *transport) Name() string { return t.scheme }

func (t *transport) Kind() tableflip.Kind { return tableflip.KindListener }

// Open listens on address (host:port) with TCP.
func (t *transport) Open(ctx context.Context, fds tableflip.Fds, address string) (io.Closer, error) {
	t.mu.Lock()
	cfg := t.cfg
	t.mu.Unlock()
	if cfg == nil {
		return nil, fmt.Errorf("%w (address %s://%s)", ErrNoConfig, t.scheme, address)
	}
	return Listen(ctx, fds, "tcp", address, cfg)
}
