// Command quic is a QUIC server that upgrades itself without breaking a
// connection: send it SIGHUP and the next generation (the binary on disk
// now) takes the UDP socket and every new connection, while this one keeps
// answering its own connections, their datagrams steered to it by
// connection ID, until they close or its drain deadline passes. SIGTERM
// stops it.
//
//	go build -o quic-echo .
//	./quic-echo -addr 127.0.0.1:4433 -pidfile quic-echo.pid &
//	kill -HUP $(cat quic-echo.pid)
//	kill -TERM $(cat quic-echo.pid)
//
// It speaks two protocols on one socket, chosen by ALPN:
//   - "echo": on each bidirectional stream the client writes a few bytes
//     and closes its side; the server answers "pid=<pid>" and closes.
//   - "h3": HTTP/3; GET / answers 200 with "pid=<pid>".
//
// Its certificate is its own, made at start (clients do not verify it).
// Its flags and answers are a stable contract: -addr, -pidfile, -drain
// (how long a generation keeps its connections after an upgrade or
// SIGTERM, default 30s). When it serves, each generation prints one line
// on stdout:
//
//	ready pid=<pid> generation=<n> addr=<host:port>
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/tableflip"
	tfquic "github.com/tableflip-go/tableflip/transport/quic"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:4433", "serve QUIC on this UDP `host:port` (port 0: any free port, kept across upgrades)")
	pidFile := fs.String("pidfile", "", "keep the serving process's pid in this `file`")
	drain := fs.Duration("drain", 30*time.Second, "how long a generation keeps serving its connections after an upgrade or SIGTERM, before it closes them")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := zap.New(nil)
	if l, err := zap.NewProduction(); err == nil {
		log = l
	}
	defer log.Sync()
	if err := serve(log, stdout, *addr, *pidFile, *drain); err != nil {
		log.Error("quic", zap.Error(err))
		fmt.Fprintln(stderr, "quic:", err)
		return 1
	}
	return 0
}

func serve(log *zap.Logger, stdout io.Writer, addr, pidFile string, drain time.Duration) error {
	upg, err := tableflip.New(tableflip.Options{PIDFile: pidFile, Logger: log})
	if err != nil {
		return err
	}
	defer upg.Stop()

	// The socket, the forwarding sockets to older generations and the
	// keys they share are inherited, or created.
	tr, err := tfquic.New(context.Background(), upg, "udp", addr, nil)
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	defer tr.Close()
	tlsConf, err := selfSigned()
	if err != nil {
		upg.Fail(err)
		return err
	}

	stopSignals := handleSignals(log, upg)
	defer stopSignals()

	// A generation reads nothing before it has committed.
	if err := upg.Ready(); err != nil {
		return err
	}
	ln, err := tr.Listen(tlsConf, &quic.Config{MaxIdleTimeout: 60 * time.Second})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready pid=%d generation=%d addr=%s\n", os.Getpid(), upg.Generation(), ln.Addr())

	answer := []byte("pid=" + strconv.Itoa(os.Getpid()))
	h3 := &http3.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(answer)
	})}
	var wg sync.WaitGroup
	// The drain's context, set before drainStarted is closed.
	var ctx context.Context
	drainStarted := make(chan struct{})
	wg.Go(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			if c.ConnectionState().TLS.NegotiatedProtocol != "h3" {
				wg.Go(func() { echo(c, answer) })
				continue
			}
			wg.Go(func() {
				if err := h3.ServeQUICConn(c); !errors.Is(err, http.ErrServerClosed) {
					return
				}
				// A handshake this generation began before it handed over,
				// done after its HTTP/3 server began to shut down: serve it
				// with a server of its own that sends GOAWAY at once.
				<-drainStarted
				serveLate(ctx, c, h3.Handler)
			})
		}
	})

	<-upg.Exit() // the next generation is ready, or SIGTERM
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	close(drainStarted)
	// HTTP/3 clients get GOAWAY and take new requests elsewhere.
	wg.Go(func() { h3.Shutdown(ctx) })
	err = tr.Drain(ctx)
	wg.Wait()
	log.Info("drained", zap.Int("pid", os.Getpid()), zap.Duration("duration", time.Since(start)), zap.Bool("deadline", err != nil))
	return nil
}

// serveLate serves HTTP/3 connection c, accepted while draining, and
// shuts its server down (GOAWAY) as soon as the connection is registered.
func serveLate(ctx context.Context, c *quic.Conn, h http.Handler) {
	registered := make(chan struct{})
	late := &http3.Server{Handler: h, ConnContext: func(ctx context.Context, _ *quic.Conn) context.Context {
		close(registered)
		return ctx
	}}
	var wg sync.WaitGroup
	wg.Go(func() { late.ServeQUICConn(c) })
	select {
	case <-registered:
	case <-c.Context().Done():
	}
	late.Shutdown(ctx)
	wg.Wait()
}

// echo answers each bidirectional stream of c with answer, once the
// client has closed its side.
func echo(c *quic.Conn, answer []byte) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		wg.Go(func() {
			if _, err := io.Copy(io.Discard, s); err != nil {
				s.CancelWrite(1)
				return
			}
			s.Write(answer)
			s.Close()
		})
	}
}

// handleSignals upgrades on SIGHUP and stops on SIGTERM or SIGINT. It is
// installed before Ready writes the pid file, since a SIGHUP without a
// handler kills the process.
func handleSignals(log *zap.Logger, upg *tableflip.Upgrader) (stop func()) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case sig := <-signals:
				if sig != syscall.SIGHUP {
					upg.Stop()
					return
				}
				wg.Go(func() {
					if _, err := upg.Upgrade(context.Background()); err != nil && !errors.Is(err, tableflip.ErrStopped) {
						log.Error("upgrade failed, still serving", zap.Error(err))
					}
				})
			case <-upg.Exit():
				return
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(signals)
		close(done)
		wg.Wait()
	}
}

// selfSigned is a TLS configuration with a new self-signed certificate.
func selfSigned() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tableflip quic example"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{"echo", http3.NextProtoH3},
	}, nil
}
