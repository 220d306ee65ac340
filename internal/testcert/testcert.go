package testcert

import (
	"crypto"
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
	"math/big"
	"net"
	"os"
	"time"
)

// DefaultHost is what a certificate is for when no host is given: the
// loopback address the tests listen on.
const DefaultHost = "127.0.0.1"

// CA is a certificate authority for a test. Pool trusts Cert, and so every
// leaf the CA signs.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	Pool *x509.CertPool
}

// NewCA makes a CA whose certificate's common name is name.
func NewCA(name string) (*CA, error) {
	cert, key, err := issue(&x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("testcert: CA %q: %w", name, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Key: key, Pool: pool}, nil
}

// Leaf returns a new server certificate with its own key, signed by ca,
// for hosts (DefaultHost if none), with the given serial number.
func (ca *CA) Leaf(serial int64, hosts ...string) (tls.Certificate, error) {
	tmpl := serverTemplate(serial, hosts)
	cert, key, err := issue(tmpl, ca.Cert, ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testcert: leaf %d for %v: %w", serial, tmpl.Subject.CommonName, err)
	}
	return tlsCertificate(cert, key), nil
}

// WriteLeaf makes a leaf as Leaf does and writes it to certFile and its
// key to keyFile, both PEM, each replaced by a rename (the key first). It
// returns the certificate written.
func (ca *CA) WriteLeaf(serial int64, certFile, keyFile string, hosts ...string) (*x509.Certificate, error) {
	c, err := ca.Leaf(serial, hosts...)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("testcert: leaf %d: %w", serial, err)
	}
	if err := writeAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})); err != nil {
		return nil, err
	}
	if err := writeAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Leaf.Raw})); err != nil {
		return nil, err
	}
	return c.Leaf, nil
}

// SelfSigned returns a server certificate for hosts (DefaultHost if none)
// that signs itself, and a pool that trusts it.
func SelfSigned(hosts ...string) (tls.Certificate, *x509.CertPool, error) {
	tmpl := serverTemplate(1, hosts)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	cert, key, err := issue(tmpl, nil, nil)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("testcert: self-signed for %v: %w", tmpl.Subject.CommonName, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tlsCertificate(cert, key), pool, nil
}

// Fingerprint is a short hash of c, or "none" for nil.
func Fingerprint(c *x509.Certificate) string {
	if c == nil {
		return "none"
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:8])
}

// PeerFingerprint is the Fingerprint of the certificate a connection was
// served, or "none" when there is none (no TLS, or cs is nil).
func PeerFingerprint(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "none"
	}
	return Fingerprint(cs.PeerCertificates[0])
}

// serverTemplate is a server certificate for hosts, the first of which is
// its common name.
func serverTemplate(serial int64, hosts []string) *x509.Certificate {
	if len(hosts) == 0 {
		hosts = []string{DefaultHost}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: hosts[0]},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// issue makes a key and a certificate of tmpl for it, signed by parent's
// key, or by itself when parent is nil.
func issue(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func tlsCertificate(cert *x509.Certificate, key crypto.Signer) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// writeAtomic replaces path with b by a rename, so that a reader sees the
// old file or the new one, whole.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("testcert: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("testcert: %w", err)
	}
	return nil
}
