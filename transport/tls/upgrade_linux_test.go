package tlstransport_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tableflip-go/tableflip/internal/proctest"
	"github.com/tableflip-go/tableflip/internal/testcert"
)

// tlsServer is a started server role and what the test knows of it.
type tlsServer struct {
	t    *testing.T
	p    *proctest.Proc
	ca   *testcert.CA
	pid  string
	addr string
	cert string // cert file
	key  string // key file
	keys []string
}

func startServer(t *testing.T, mode string, env ...string) *tlsServer {
	t.Helper()
	s := &tlsServer{t: t}
	s.ca, s.cert, s.key = newCertFiles(t, 100)
	env = append(env, "TLSTEST_MODE="+mode, "TLSTEST_CERT="+s.cert, "TLSTEST_KEY="+s.key)
	s.p = proctest.Start(t, "server", env...)
	s.ready(s.p.Expect("READY "))
	return s
}

func (s *tlsServer) ready(line string) {
	f := proctest.Fields(line)
	if s.addr != "" && f["addr"] != s.addr {
		s.t.Fatalf("generation listens on %s, its parent on %s: the socket was not inherited", f["addr"], s.addr)
	}
	s.pid, s.addr = f["pid"], f["addr"]
	s.keys = strings.Split(f["keys"], ",")
}

// client returns an HTTPS client that opens a new connection (and so a new
// handshake) for every request and keeps sessions in cache.
func (s *tlsServer) client(cache tls.ClientSessionCache) *http.Client {
	return &http.Client{
		Timeout:   proctest.Timeout,
		Transport: &http.Transport{TLSClientConfig: clientTLS(s.ca, cache), DisableKeepAlives: true},
	}
}

// get fetches path with c and returns the body and the TLS state.
func (s *tlsServer) get(c *http.Client, scheme, path string) (string, *tls.ConnectionState) {
	s.t.Helper()
	resp, err := c.Get(scheme + "://" + s.addr + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %s %s", path, resp.Status, b)
	}
	return string(b), resp.TLS
}

// upgrade asks the current generation (over scheme) to upgrade to mode,
// and waits until the new generation is ready and the old one has exited,
// so that the next connection is the new generation's.
func (s *tlsServer) upgrade(scheme, mode string) {
	s.t.Helper()
	old := s.pid
	body, _ := s.get(s.client(nil), scheme, "/upgrade?mode="+mode)
	var child int
	if _, err := fmt.Sscanf(body, "ok child=%d", &child); err != nil {
		s.t.Fatalf("upgrade: %q", body)
	}
	s.ready(s.p.Expect("READY pid=" + strconv.Itoa(child) + " "))
	s.p.Expect("EXIT pid=" + old)
}

// A session from before an upgrade resumes after it when the listener is
// tlstransport's (opened directly or by name), and does not with crypto/tls's
// own listener over an inherited socket. With tlstransport a certificate
// replaced on disk is served from the next generation on.
func TestResumeAcrossUpgrades(t *testing.T) {
	for _, tc := range []struct {
		mode   string
		resume bool
	}{
		{"tls", true},
		{"uri", true},
		{"stdtls", false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			s := startServer(t, tc.mode)
			const upgrades = 3
			resumed := 0
			for i := 1; i <= upgrades; i++ {
				cache := tls.NewLRUClientSessionCache(4)
				c := s.client(cache)
				body, cs := s.get(c, "https", "/")
				if cs.DidResume || !strings.Contains(body, "pid="+s.pid+" ") {
					t.Fatalf("first request: resumed=%v body %q, want a full handshake with pid %s", cs.DidResume, body, s.pid)
				}
				servedBefore := testcert.PeerFingerprint(cs)

				// The new certificate is on disk, but this generation
				// loaded the old one.
				if _, err := s.ca.WriteLeaf(int64(100+i), s.cert, s.key); err != nil {
					t.Fatal(err)
				}
				if _, cs := s.get(s.client(nil), "https", "/"); testcert.PeerFingerprint(cs) != servedBefore {
					t.Fatalf("the running generation serves a certificate it did not load")
				}

				s.upgrade("https", tc.mode)
				body, cs = s.get(c, "https", "/")
				if !strings.Contains(body, "pid="+s.pid+" ") {
					t.Fatalf("after upgrade %d: body %q, want pid %s", i, body, s.pid)
				}
				if cs.DidResume {
					resumed++
				}
				if cs.DidResume != tc.resume {
					t.Errorf("upgrade %d: resumed=%v, want %v", i, cs.DidResume, tc.resume)
				}
				if _, cs := s.get(s.client(nil), "https", "/"); testcert.PeerFingerprint(cs) == servedBefore {
					t.Errorf("upgrade %d: the new generation serves the old certificate", i)
				}
			}
			t.Logf("mode %s: %d of %d sessions resumed across an upgrade", tc.mode, resumed, upgrades)
		})
	}
}

// Ticket keys keep rotating across generations, keep their creation time,
// and decrypt tickets until their lifetime ends: a ticket from the first
// generation resumes for the two generations after it and not the third.
// Each generation's ticket clock runs one hour (one rotation) ahead of its
// parent's; the lifetime is three hours.
func TestTicketKeysRotateAcrossGenerations(t *testing.T) {
	s := startServer(t, "tls", "TLSTEST_SHIFT=1h", "TLSTEST_ROTATION=1h", "TLSTEST_LIFETIME=3h")
	if len(s.keys) != 1 {
		t.Fatalf("first generation has keys %v, want one", s.keys)
	}
	first := s.keys[0]
	gen1 := &firstTicketCache{}
	if _, cs := s.get(s.client(gen1), "https", "/"); cs.DidResume {
		t.Fatal("first connection resumed")
	}
	var gen3 *firstTicketCache
	for gen := 2; gen <= 4; gen++ {
		prev := s.keys
		s.upgrade("https", "tls")
		// A new key encrypts; the previous ones follow, the oldest
		// dropped once its lifetime is over.
		want := min(gen, 3)
		if len(s.keys) != want || s.keys[0] == prev[0] || strings.Join(s.keys[1:], ",") != strings.Join(prev[:want-1], ",") {
			t.Fatalf("generation %d has keys %v after %v, want a new one and the newest %d before", gen, s.keys, prev, want-1)
		}
		_, cs := s.get(s.client(gen1), "https", "/")
		if wantResume := gen <= 3; cs.DidResume != wantResume {
			t.Errorf("generation %d (keys %v): ticket of key %s resumed=%v, want %v", gen, s.keys, first, cs.DidResume, wantResume)
		}
		if gen == 3 {
			gen3 = &firstTicketCache{}
			s.get(s.client(gen3), "https", "/")
		}
	}
	if _, cs := s.get(s.client(gen3), "https", "/"); !cs.DidResume {
		t.Errorf("a ticket from the third generation did not resume in the fourth")
	}
}

// Switching a listener between plain TCP and TLS keeps the socket: both
// use the tcp record.
func TestSwitchBetweenTCPAndTLS(t *testing.T) {
	s := startServer(t, "tcp")
	plain := &http.Client{Timeout: proctest.Timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	s.get(plain, "http", "/")
	s.upgrade("http", "tls") // ready() fails the test if the address changed
	if _, cs := s.get(s.client(nil), "https", "/"); cs == nil {
		t.Fatal("no TLS after switching to tls")
	}
	s.upgrade("https", "tcp")
	s.get(plain, "http", "/")
	s.upgrade("http", "tls")
	s.get(s.client(nil), "https", "/")
}

// An inherited file of the wrong kind under a name the TLS listener claims
// fails the child with a clear error that reaches the parent's Upgrade, and
// the child's failed Listen leaves no descriptor open.
func TestInheritedWrongKind(t *testing.T) {
	for _, tc := range []struct {
		bad  string
		want string
	}{
		{"udp-as-tcp", "tlstransport: tcp: inherited tcp 127.0.0.1:0"},
		{"udp-as-tls", `tlstransport: inherited tls \"tcp/127.0.0.1:0\": the file is an IPv4 datagram socket, not a TCP listener`},
	} {
		t.Run(tc.bad, func(t *testing.T) {
			_, cert, key := newCertFiles(t, 1)
			p := proctest.Start(t, "badparent", "TLSTEST_BAD="+tc.bad, "TLSTEST_CERT="+cert, "TLSTEST_KEY="+key)
			line := p.Expect("LISTENERR ")
			f := proctest.Fields(line)
			before, _ := strconv.Atoi(f["fds_before"])
			after, _ := strconv.Atoi(f["fds_after"])
			if before <= 0 || after > before {
				t.Errorf("failed Listen: %d descriptors before, %d after", before, after)
			}
			if !strings.Contains(line, tc.want) {
				t.Errorf("child error %s, want it to contain %q", line, tc.want)
			}
			up := p.Expect("UPGRADE ")
			if !strings.Contains(up, "child") || !strings.Contains(up, tc.want) {
				t.Errorf("parent's upgrade: %s, want the child's reason %q", up, tc.want)
			}
			if code := p.Wait(); code != 0 {
				t.Errorf("parent exited %d", code)
			}
			t.Logf("%s\n%s", line, up)
		})
	}
}
