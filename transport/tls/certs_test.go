package tlstransport_test

import (
	"crypto/tls"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tableflip-go/tableflip/internal/testcert"
)

// newCertFiles makes a CA and writes a leaf of serial it signed, for
// 127.0.0.1, to cert.pem and key.pem in a temporary directory. The CA
// signs the certificates of every generation of a test server, so that a
// client trusts them all and can resume a session across a certificate
// change.
func newCertFiles(t *testing.T, serial int64) (ca *testcert.CA, certFile, keyFile string) {
	t.Helper()
	ca, err := testcert.NewCA("tlstransport test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := ca.WriteLeaf(serial, certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	return ca, certFile, keyFile
}

// clientTLS trusts ca and keeps sessions in cache.
func clientTLS(ca *testcert.CA, cache tls.ClientSessionCache) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool, ClientSessionCache: cache, MinVersion: tls.VersionTLS12}
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
