package testcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tableflip-go/tableflip/internal/testcert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait; a passing run never reaches it.
const timeout = 60 * time.Second

// handshake serves cert on a loopback listener, dials it with client, and
// returns what the client saw of the connection, or the client's error.
func handshake(t *testing.T, cert tls.Certificate, client *tls.Config) (*tls.ConnectionState, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		if c.(*tls.Conn).Handshake() == nil {
			io.WriteString(c, "hello")
		}
	})
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: client}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if b, err := io.ReadAll(c); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v; want hello", b, err)
	}
	cs := c.(*tls.Conn).ConnectionState()
	return &cs, nil
}

func verify(c *x509.Certificate, pool *x509.CertPool, host string) error {
	_, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

func TestLeafHosts(t *testing.T) {
	ca, err := testcert.NewCA("testcert test CA")
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || ca.Cert.Subject.CommonName != "testcert test CA" {
		t.Fatalf("CA certificate: IsCA=%v CN=%q", ca.Cert.IsCA, ca.Cert.Subject.CommonName)
	}
	for _, tc := range []struct {
		name   string
		hosts  []string
		ips    []string
		dns    []string
		good   []string
		bad    []string
		wantCN string
	}{
		{"default", nil, []string{"127.0.0.1"}, nil, []string{"127.0.0.1"}, []string{"::1", "localhost"}, "127.0.0.1"},
		{"ip and name", []string{"::1", "localhost"}, []string{"::1"}, []string{"localhost"}, []string{"::1", "localhost"}, []string{"127.0.0.1", "example.com"}, "::1"},
		{"name", []string{"example.test"}, nil, []string{"example.test"}, []string{"example.test"}, []string{"127.0.0.1"}, "example.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ca.Leaf(42, tc.hosts...)
			if err != nil {
				t.Fatal(err)
			}
			leaf := c.Leaf
			if leaf == nil || len(c.Certificate) != 1 || string(c.Certificate[0]) != string(leaf.Raw) {
				t.Fatalf("tls.Certificate does not hold its leaf: %+v", c)
			}
			if leaf.SerialNumber.Int64() != 42 || leaf.Subject.CommonName != tc.wantCN || leaf.IsCA {
				t.Errorf("serial %v CN %q IsCA %v, want 42 %q false", leaf.SerialNumber, leaf.Subject.CommonName, leaf.IsCA, tc.wantCN)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if strings.Join(ips, ",") != strings.Join(tc.ips, ",") || strings.Join(leaf.DNSNames, ",") != strings.Join(tc.dns, ",") {
				t.Errorf("SANs IP %v DNS %v, want %v %v", ips, leaf.DNSNames, tc.ips, tc.dns)
			}
			for _, h := range tc.good {
				if err := verify(leaf, ca.Pool, h); err != nil {
					t.Errorf("%s: %v", h, err)
				}
			}
			for _, h := range tc.bad {
				if verify(leaf, ca.Pool, h) == nil {
					t.Errorf("verified for %s", h)
				}
			}
			if _, err := tls.X509KeyPair(pemCert(c), pemKey(t, c)); err != nil {
				t.Errorf("key does not match the certificate: %v", err)
			}
		})
	}

	other, err := testcert.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	c, err := other.Leaf(1)
	if err != nil {
		t.Fatal(err)
	}
	if verify(c.Leaf, ca.Pool, "127.0.0.1") == nil {
		t.Error("a leaf of another CA verified")
	}
}

// A leaf written to disk loads as a key pair, is the certificate returned,
// and a later one replaces it whole, leaving no temporary file.
func TestWriteLeaf(t *testing.T) {
	ca, err := testcert.NewCA("testcert test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	var prev string
	for serial := int64(1); serial <= 2; serial++ {
		written, err := ca.WriteLeaf(serial, certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if testcert.Fingerprint(pair.Leaf) != testcert.Fingerprint(written) || pair.Leaf.SerialNumber.Int64() != serial {
			t.Errorf("serial %d: the file holds serial %v, %s; WriteLeaf returned %s", serial, pair.Leaf.SerialNumber, testcert.Fingerprint(pair.Leaf), testcert.Fingerprint(written))
		}
		if testcert.Fingerprint(written) == prev {
			t.Errorf("serial %d: the same certificate as before", serial)
		}
		prev = testcert.Fingerprint(written)
		if err := verify(pair.Leaf, ca.Pool, "127.0.0.1"); err != nil {
			t.Error(err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files %v, want cert.pem and key.pem", names)
	}
	if _, err := ca.WriteLeaf(3, filepath.Join(dir, "missing", "cert.pem"), keyFile); err == nil || !strings.HasPrefix(err.Error(), "testcert: ") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("writing into a missing directory: %v, want a testcert error wrapping ErrNotExist", err)
	}
}

// A self-signed certificate serves a real handshake to a client trusting
// its pool, which sees the certificate's fingerprint; a client with the
// system pool refuses it.
func TestSelfSigned(t *testing.T) {
	cert, pool, err := testcert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := handshake(t, cert, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := testcert.PeerFingerprint(cs), testcert.Fingerprint(cert.Leaf); got != want || got == "none" {
		t.Errorf("served %s, want %s", got, want)
	}
	if _, err := handshake(t, cert, &tls.Config{RootCAs: x509.NewCertPool()}); err == nil {
		t.Error("a client that does not trust the pool connected")
	}
	if got := testcert.PeerFingerprint(nil); got != "none" {
		t.Errorf("PeerFingerprint(nil) = %q", got)
	}
	if got := testcert.PeerFingerprint(&tls.ConnectionState{}); got != "none" {
		t.Errorf("PeerFingerprint of no certificate = %q", got)
	}
}

func pemCert(c tls.Certificate) []byte {
	return pemBlock("CERTIFICATE", c.Certificate[0])
}

func pemKey(t *testing.T, c tls.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
