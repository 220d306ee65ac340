// Command tls is an HTTPS server that upgrades itself without failing a
// request and without losing its clients' TLS sessions: send it SIGHUP and
// the next generation (the binary on disk now) takes over the listening
// socket and the session-ticket keys while this one drains. SIGTERM stops
// it.
//
//	go build -o tls-server ./examples/tls
//	./tls-server -addr 127.0.0.1:8443 -pidfile tls.pid -cert cert.pem -key key.pem &
//	curl --cacert ca.pem https://127.0.0.1:8443/   # pid=4242 generation=1
//	cp new-cert.pem cert.pem; cp new-key.pem key.pem
//	kill -HUP $(cat tls.pid)                       # the new certificate is served from now on
//	curl --cacert ca.pem https://127.0.0.1:8443/   # pid=4250 generation=2
//	kill -TERM $(cat tls.pid)
//
// Each generation reads -cert and -key when it starts, so replacing the
// files and sending SIGHUP is how the certificate rotates; a generation
// that cannot load them fails its upgrade, and the running one keeps
// serving.
//
// Without -cert and -key, the first generation generates a self-signed
// certificate for localhost, 127.0.0.1, ::1 and the host of -addr, in
// memory. It is not written to disk: it travels to each next generation in
// the upgrade's state handoff, so that the certificate (and a pin on it)
// stays the same for the life of the service. A fresh start, or a
// certificate within a day of expiring, gets a new one. The log shows its
// SHA-256 fingerprint; `curl -k` accepts it.
//
// Its flags and its answer are a stable contract, the same as
// examples/http's: -addr, -pidfile, -cert, -key, and "pid=<pid>" in the
// body of GET /. It serves HTTP/2 and HTTP/1.1.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/drain"
	tlstransport "github.com/tableflip-go/tableflip/transport/tls"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

type options struct {
	addr, pidFile, certFile, keyFile string
}

// run is main with its arguments and exit code, so that tests run the
// program itself.
func run(args []string) int {
	fs := flag.NewFlagSet("tls", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8443", "serve HTTPS on this TCP `host:port`")
	fs.StringVar(&o.pidFile, "pidfile", "", "keep the serving process's pid in this `file`")
	fs.StringVar(&o.certFile, "cert", "", "PEM certificate chain `file`, read by every generation (default: a self-signed one)")
	fs.StringVar(&o.keyFile, "key", "", "PEM private key `file` of -cert")
	logFormat := fs.String("log", "console", "log to stderr as `console`, json, or off")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if (o.certFile == "") != (o.keyFile == "") {
		fmt.Fprintln(os.Stderr, "tls: -cert and -key go together")
		return 2
	}
	log, err := newLogger(*logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls:", err)
		return 2
	}
	defer log.Sync()
	if err := serve(log, o); err != nil {
		log.Error("exit", zap.Error(err))
		return 1
	}
	return 0
}

func serve(log *zap.Logger, o options) error {
	// generated is the self-signed pair (PEM), when there is one: the
	// state handed to the next generation.
	var generated []byte
	upg, err := tableflip.New(tableflip.Options{
		PIDFile: o.pidFile,
		Logger:  log,
		SaveState: func(ctx context.Context, w io.Writer) error {
			_, err := w.Write(generated)
			return err
		},
	})
	if err != nil {
		return err
	}
	defer upg.Stop()

	cfg := &tlstransport.Config{
		CertFile: o.certFile,
		KeyFile:  o.keyFile,
		TLS:      &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}},
	}
	if o.certFile == "" {
		cert, pemPair, err := selfSigned(log, upg.LoadState(), o.addr)
		if err != nil {
			upg.Fail(err)
			return err
		}
		generated = pemPair
		cfg.TLS.Certificates = []tls.Certificate{cert}
	}
	// The socket is inherited from the previous generation, or created;
	// the certificate is loaded now, the ticket keys inherited.
	ln, err := tlstransport.Listen(context.Background(), upg, "tcp", o.addr, cfg)
	if err != nil {
		upg.Fail(err) // the previous generation logs why and keeps serving
		return err
	}
	log.Info("serving", zap.Int("pid", os.Getpid()), zap.Stringer("addr", ln.Addr()),
		zap.String("cert_sha256", certFingerprint(ln.Config())))

	pid, gen := os.Getpid(), upg.Generation()
	srv := drain.New(&http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "pid=%d generation=%d\n", pid, gen)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}, drain.Options{Logger: log})

	// drain.Run handles SIGHUP (upgrade, and so certificate rotation)
	// and SIGTERM (stop), calls Ready, serves only once Ready has
	// succeeded, and drains when the next generation is ready or SIGTERM
	// came. ServeTLS (rather than Serve(ln)) lets the drain see the
	// bytes under TLS, so that a client that has sent part of a request
	// when the drain begins is waited for.
	serveTLS := func() error { return srv.ServeTLS(ln.TCP(), ln.Config()) }
	return drain.Run(upg, serveTLS, srv.Drain, drain.RunOptions{Logger: log})
}

// selfSigned returns the pair the previous generation handed over in
// state, or a new one when there is none or it expires within a day.
func selfSigned(log *zap.Logger, state io.Reader, addr string) (tls.Certificate, []byte, error) {
	prev, err := io.ReadAll(state)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tls: read the previous generation's certificate: %w", err)
	}
	if len(prev) > 0 {
		cert, err := tls.X509KeyPair(prev, prev)
		if err == nil && time.Until(cert.Leaf.NotAfter) > 24*time.Hour {
			return cert, prev, nil
		}
		log.Warn("generating a new self-signed certificate", zap.NamedError("previous", err))
	}
	pemPair, err := generate(addr)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tls: generate a self-signed certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(pemPair, pemPair)
	return cert, pemPair, err
}

// generate makes a self-signed ECDSA certificate valid for 90 days, for
// localhost and the host of addr, and returns it and its key as PEM.
func generate(addr string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "tableflip examples/tls"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() && !ip.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if host != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	return b.Bytes(), nil
}

func certFingerprint(cfg *tls.Config) string {
	if len(cfg.Certificates) == 0 || len(cfg.Certificates[0].Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(cfg.Certificates[0].Certificate[0])
	return hex.EncodeToString(sum[:])
}

// newLogger returns zap's production logger in the encoding -log asks
// for, without stack traces (errors tell their own story), or one that
// logs nothing.
func newLogger(format string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.DisableStacktrace = true
	switch format {
	case "json":
	case "console":
		cfg.Encoding = "console"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "off":
		return zap.NewNop(), nil
	default:
		return nil, errors.New("-log must be console, json or off")
	}
	return cfg.Build()
}
