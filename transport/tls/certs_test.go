package tlstransport_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCA signs the leaf certificates the test servers load, so that a
// client trusts every generation's certificate and can resume a session
// across a certificate change.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA() (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlstransport test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}, nil
}

// newCertFiles makes a CA and writes a leaf of serial it signed to
// cert.pem and key.pem in a temporary directory.
func newCertFiles(t *testing.T, serial int64) (ca *testCA, certFile, keyFile string) {
	t.Helper()
	ca, err := newCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := ca.writeLeaf(serial, certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	return ca, certFile, keyFile
}

// leaf returns a PEM certificate for 127.0.0.1 with the given serial, and
// its PEM key.
func (ca *testCA) leaf(serial int64) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
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
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// writeLeaf writes a new leaf to certFile and keyFile (atomically each).
func (ca *testCA) writeLeaf(serial int64, certFile, keyFile string) error {
	c, k, err := ca.leaf(serial)
	if err != nil {
		return err
	}
	if err := writeAtomic(keyFile, k); err != nil {
		return err
	}
	return writeAtomic(certFile, c)
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fingerprint is a short hash of the certificate a connection was served.
func fingerprint(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "none"
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:8])
}

// clientTLS trusts ca and keeps sessions in cache.
func (ca *testCA) clientTLS(cache tls.ClientSessionCache) *tls.Config {
	return &tls.Config{RootCAs: ca.pool, ClientSessionCache: cache, MinVersion: tls.VersionTLS12}
}

// firstTicketCache keeps, per server, the first session it is given and
// ignores the fresher tickets a resumed connection brings: it keeps
// offering a ticket of one generation, to test how long its key lives.
type firstTicketCache struct {
	mu sync.Mutex
	m  map[string]*tls.ClientSessionState
}

func (c *firstTicketCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[key]
	return s, ok
}

func (c *firstTicketCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*tls.ClientSessionState)
	}
	if _, ok := c.m[key]; !ok && cs != nil {
		c.m[key] = cs
	}
}
