package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
	"github.com/tableflip-go/tableflip/internal/testcert"
)

// newCA makes the CA that signs the certificates the example serves, so
// that a client trusts every generation's certificate.
func newCA(t *testing.T) *testcert.CA {
	t.Helper()
	ca, err := testcert.NewCA("examples/tls test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// writeLeaf writes a new certificate for 127.0.0.1 signed by ca and its
// key to the two files, each replaced by rename, and returns the
// certificate's fingerprint.
func writeLeaf(t *testing.T, ca *testcert.CA, serial int64, certFile, keyFile string) string {
	t.Helper()
	leaf, err := ca.WriteLeaf(serial, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return testcert.Fingerprint(leaf)
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
