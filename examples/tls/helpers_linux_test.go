package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
)

// testCA signs the certificates the example serves, so that a client
// trusts every generation's certificate.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "examples/tls test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// writeLeaf writes a new certificate for 127.0.0.1 and its key to the two
// files, each replaced by rename, and returns the certificate's
// fingerprint.
func (ca *testCA) writeLeaf(t *testing.T, serial int64, certFile, keyFile string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		b    []byte
	}{
		{keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})},
		{certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})},
	} {
		if err := os.WriteFile(f.path+".tmp", f.b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".tmp", f.path); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}

func fingerprint(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "none"
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:8])
}

// server is a running examples/tls process tree; its log (-log json) is
// Stderr.
type server struct {
	*exampletest.Server
	addr string
}

// startExample runs the program (the test binary as the example) on a
// port of its choosing with args, and waits until it serves.
func startExample(t *testing.T, args ...string) *server {
	t.Helper()
	s := program.Start(t, append([]string{"-addr", "127.0.0.1:0", "-log", "json"}, args...)...)
	ln := s.Listener(t)
	if ln.Network != "tcp" {
		t.Fatalf("pid %d listens on %v, want TCP", s.PID(), ln)
	}
	return &server{Server: s, addr: ln.Addr}
}

// get makes one request on a new connection with cfg and returns the body
// and the TLS state.
func (e *server) get(t *testing.T, cfg *tls.Config) (string, *tls.ConnectionState) {
	t.Helper()
	c := &http.Client{Timeout: loadtest.DefaultTimeout, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Get("https://" + e.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s %s", resp.Status, b)
	}
	return string(b), resp.TLS
}

func countFds(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// h2Load is clients that share one HTTP/2 connection at a time and send
// GET / in a loop, as a Go HTTP/2 client does (it moves to a new
// connection on GOAWAY).
type h2Load struct {
	stopc    chan struct{}
	wg       sync.WaitGroup
	tr       *http.Transport
	mu       sync.Mutex
	ok, fail int
	errs     []string
	once     sync.Once
}

func startH2Load(t *testing.T, url string, cfg *tls.Config, clients int) *h2Load {
	l := &h2Load{stopc: make(chan struct{}), tr: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	c := &http.Client{Transport: l.tr, Timeout: loadtest.DefaultTimeout}
	for range clients {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stopc:
					return
				default:
				}
				err := func() error {
					resp, err := c.Get(url)
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					if err != nil {
						return err
					}
					if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("pid=")) {
						return fmt.Errorf("%s %s %q", resp.Proto, resp.Status, b)
					}
					return nil
				}()
				l.mu.Lock()
				if err == nil {
					l.ok++
				} else {
					l.fail++
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *h2Load) stop() (ok, fail int, errs []string) {
	l.once.Do(func() {
		close(l.stopc)
		l.wg.Wait()
		l.tr.CloseIdleConnections()
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.fail, l.errs
}
