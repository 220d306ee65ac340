package tlstransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/internal/fdutil"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// TransportName is the transport under which a TLS listener's
// session-ticket keys travel to the next generation (its socket travels
// under the tcp transport).
const TransportName = "tls"

// Config configures a TLS listener. The zero value is not usable: it needs a
// certificate, from CertFile and KeyFile or from TLS.
type Config struct {
	// CertFile and KeyFile name a PEM certificate chain and its private
	// key. They are read by Listen, so each generation loads the files as
	// they are on disk when it starts: replacing them and upgrading is how
	// a certificate rotates.
	CertFile, KeyFile string
	// TLS is the base server configuration, cloned by Listen. When
	// CertFile is empty it must provide Certificates, GetCertificate or
	// GetConfigForClient.
	// Its session-ticket keys are managed by the listener (see Tickets);
	// a GetConfigForClient of its own still runs, and a Config it returns
	// with explicitly set ticket keys uses those instead.
	TLS *tls.Config
	// Tickets configures the rotation of session-ticket keys.
	Tickets TicketOptions
	// Listen creates the TCP socket when it is not inherited.
	Listen tcp.ListenConfig
}

// Listener is a TLS listener whose TCP socket and session-ticket keys the
// next generation inherits. It returns *tls.Conn connections, so
// http.Server.Serve treats them as HTTPS.
type Listener struct {
	tcp    net.Listener
	config *tls.Config
	ring   *ticketRing

	closeOnce sync.Once
	closeErr  error
}

var _ net.Listener = (*Listener)(nil)

// Listen returns a TLS listener on network ("tcp", "tcp4" or "tcp6") and
// address.
//
// The TCP socket is the one tcp.Listen returns for the same network and
// address: inherited from the previous generation if it passed one (whether
// it served TLS or plain TCP on it), created otherwise, and passed on.
// The certificate is loaded anew. The session-ticket keys are inherited if
// the previous generation served TLS on the same address, so that its
// clients resume their sessions; otherwise they start fresh. At every
// upgrade the current keys go to the child, and rotation pauses until the
// upgrade ends so that tickets issued meanwhile stay decryptable by the
// child.
func Listen(ctx context.Context, fds tableflip.Fds, network, address string, cfg *Config) (*Listener, error) {
	if cfg == nil {
		return nil, ErrNoConfig
	}
	opts, err := cfg.Tickets.withDefaults()
	if err != nil {
		return nil, err
	}
	// Everything that can fail without touching a file descriptor comes
	// first: a missing certificate must not cost the socket.
	tc, err := serverConfig(cfg)
	if err != nil {
		return nil, err
	}
	key := companionKey(network, address)
	log := fds.Logger().With(zap.String("transport", TransportName), zap.String("key", key))

	ln, err := cfg.Listen.Listen(ctx, fds, network, address)
	if err != nil {
		return nil, fmt.Errorf("tlstransport: %w", err)
	}
	inherited, passed, err := inheritTicketKeys(fds, key, ln, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	ring, err := newTicketRing(opts, tc, inherited)
	if err == nil && !passed {
		// The keys travel as the metadata of a record of their own, whose
		// file is a second reference to the same socket: the tcp record's
		// metadata belongs to the tcp transport.
		sc, ok := ln.(syscall.Conn)
		if !ok {
			err = fmt.Errorf("tlstransport: %T has no file descriptor", ln)
		} else if err = fds.Pass(TransportName, key, sc, ring.encode()); err != nil {
			err = fmt.Errorf("tlstransport: pass session-ticket keys for %s: %w", key, err)
		}
	}
	if err != nil {
		ln.Close()
		return nil, err
	}
	l := &Listener{tcp: ln, config: tc, ring: ring}

	userGCFC := tc.GetConfigForClient
	tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if err := ring.rotate(); err != nil {
			log.Error("session-ticket key rotation failed", zap.Error(err))
		}
		if userGCFC != nil {
			return userGCFC(hello)
		}
		return nil, nil
	}

	// The hooks stay for the life of the upgrader: like the socket, the
	// keys are passed on even after this process closes its listener.
	fds.AddHooks(tableflip.Hooks{
		Prepare: func(ctx context.Context, h *tableflip.Handoff) error {
			meta, err := ring.snapshot()
			if err != nil {
				return err
			}
			h.SetMeta(TransportName, key, meta)
			return nil
		},
		Done: func(pid int, err error) {
			if err != nil {
				// This generation keeps serving: resume rotating.
				ring.freeze(false)
			}
		},
	})
	return l, nil
}

// inheritTicketKeys claims the companion record that carries the
// session-ticket keys of the previous generation. Its file must be the very
// socket that tcp.Listen returned. passed reports whether the record is
// passed on already (it was inherited).
func inheritTicketKeys(fds tableflip.Fds, key string, ln net.Listener, log *zap.Logger) (keys []ticketKey, passed bool, err error) {
	f, meta, err := fds.Inherit(TransportName, key)
	if errors.Is(err, tableflip.ErrNotInherited) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("tlstransport: %s: %w", key, err)
	}
	defer f.Close()
	if err := sameSocket(f, ln); err != nil {
		// Claimed but unusable: stop passing it, so the engine closes
		// its copy now and no later generation sees it.
		fds.Forget(TransportName, key)
		return nil, false, fmt.Errorf("tlstransport: inherited %s %q: %w", TransportName, key, err)
	}
	keys, err = decodeTicketKeys(meta)
	if err != nil {
		// Not fatal: clients fall back to a full handshake once.
		log.Warn("ignoring the session-ticket keys of the previous generation", zap.Error(err))
		keys = nil
	}
	return keys, true, nil
}

func serverConfig(cfg *Config) (*tls.Config, error) {
	var tc *tls.Config
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	} else {
		tc = &tls.Config{}
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tlstransport: load certificate %q and key %q: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		tc.Certificates = append([]tls.Certificate{cert}, tc.Certificates...)
	}
	if len(tc.Certificates) == 0 && tc.GetCertificate == nil && tc.GetConfigForClient == nil {
		return nil, ErrNoCertificate
	}
	if tc.SessionTicketsDisabled {
		return nil, errors.New("tlstransport: the TLS configuration disables session tickets; use crypto/tls directly over tcp.Listen for that")
	}
	return tc, nil
}

// companionKey is the key of the record that carries a listener's
// session-ticket keys.
func companionKey(network, address string) string { return network + "/" + address }

// Accept waits for the next connection and returns it as a *tls.Conn whose
// handshake runs on first use.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.tcp.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.config), nil
}

// Close closes this process's listener. The socket and the session-ticket
// keys are still passed to later generations, as with tcp.Listen.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.tcp.Close() })
	return l.closeErr
}

// Addr is the listener's address.
func (l *Listener) Addr() net.Addr { return l.tcp.Addr() }

// TCP is the underlying TCP listener.
func (l *Listener) TCP() net.Listener { return l.tcp }

// Config is the TLS configuration the listener serves with (a clone of
// Config.TLS with the loaded certificate and the managed ticket keys). Do
// not call its SetSessionTicketKeys: the listener manages them.
func (l *Listener) Config() *tls.Config { return l.config }

// TicketKeys lists the session-ticket keys, the encrypting key first. It
// rotates them first if due.
func (l *Listener) TicketKeys() []TicketKey {
	l.ring.rotate()
	return l.ring.info()
}

// sameSocket checks that f, the file of the companion record, is the TCP
// listener ln: a record of the right name but of another kind is refused.
func sameSocket(f *os.File, ln net.Listener) error {
	info, err := fdutil.Inspect(f)
	switch {
	case err != nil:
		return fmt.Errorf("the file is not a socket: %w", err)
	case info.Type != syscall.SOCK_STREAM || (info.Family != syscall.AF_INET && info.Family != syscall.AF_INET6):
		return fmt.Errorf("the file is %s socket, not a TCP listener", describe(info))
	case !info.Listening:
		return errors.New("the file is a TCP socket that is not listening")
	}
	fl, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("the file is not a listening socket: %w", err)
	}
	defer fl.Close()
	if got, want := fl.Addr().String(), ln.Addr().String(); got != want {
		return fmt.Errorf("the file listens on %s, the TCP socket on %s", got, want)
	}
	return nil
}

func describe(info fdutil.SocketInfo) string {
	family := map[int]string{syscall.AF_INET: "an IPv4", syscall.AF_INET6: "an IPv6", syscall.AF_UNIX: "a unix"}[info.Family]
	if family == "" {
		family = fmt.Sprintf("a family %d", info.Family)
	}
	kind := map[int]string{syscall.SOCK_STREAM: "stream", syscall.SOCK_DGRAM: "datagram", syscall.SOCK_SEQPACKET: "seqpacket"}[info.Type]
	if kind == "" {
		kind = fmt.Sprintf("type %d", info.Type)
	}
	return family + " " + kind
}
