package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
	"github.com/tableflip-go/tableflip/internal/testcert"
)

// HTTPS under load through 20 upgrades: no request fails; at every upgrade
// a session from before it resumes after it, and the certificate replaced
// on disk before it is the one served after it; every generation drains
// and exits 0, the last one on SIGTERM.
func TestHTTPSUnderLoadThroughUpgrades(t *testing.T) {
	t.Parallel()
	const upgrades = 20
	ca := newCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	served := writeLeaf(t, ca, 1, certFile, keyFile)
	e := startExample(t, "-cert", certFile, "-key", keyFile)
	ctx := context.Background()

	target := loadtest.Target{URL: "https://" + e.addr + "/", TLS: &tls.Config{RootCAs: ca.Pool}}
	loads := exampletest.StartLoads(t, target, 4)
	for _, l := range loads {
		if err := l.WaitServed(ctx, e.PID(), 1); err != nil {
			t.Fatal(err)
		}
	}
	h2 := startH2Load(t, "https://"+e.addr+"/", &tls.Config{RootCAs: ca.Pool}, 2)
	defer h2.stop()

	resumed := 0
	var latencies []time.Duration
	for i := 1; i <= upgrades; i++ {
		cache := tls.NewLRUClientSessionCache(1)
		resuming := &tls.Config{RootCAs: ca.Pool, ClientSessionCache: cache}
		body, cs := e.get(t, resuming)
		if !strings.Contains(body, fmt.Sprintf("pid=%d ", e.PID())) || cs.DidResume {
			t.Fatalf("before upgrade %d: %q resumed=%v, want pid %d and a full handshake", i, body, cs.DidResume, e.PID())
		}
		if got := testcert.PeerFingerprint(cs); got != served {
			t.Fatalf("before upgrade %d: certificate %s served, want %s", i, got, served)
		}
		served = writeLeaf(t, ca, int64(i+1), certFile, keyFile)

		up, err := e.Upgrade(ctx)
		if err != nil {
			t.Fatalf("upgrade %d: %v\nlog:\n%s", i, err, e.Stderr)
		}
		latencies = append(latencies, up.Latency)
		if !up.OldExit.Reaped || up.OldExit.Code != 0 {
			t.Errorf("upgrade %d: old generation: %v, want exit status 0", i, up.OldExit)
		}
		// The old generation has exited: every connection from now on
		// is the new one's.
		body, cs = e.get(t, resuming)
		if !strings.Contains(body, fmt.Sprintf("pid=%d ", up.NewPID)) {
			t.Fatalf("after upgrade %d: %q, want pid %d", i, body, up.NewPID)
		}
		if cs.DidResume {
			resumed++
		} else {
			t.Errorf("upgrade %d: the session from before it did not resume", i)
		}
		_, cs = e.get(t, &tls.Config{RootCAs: ca.Pool})
		if got := testcert.PeerFingerprint(cs); got != served {
			t.Errorf("after upgrade %d: certificate %s served, want the one on disk, %s", i, got, served)
		}
		for _, l := range loads {
			if err := l.WaitServed(ctx, up.NewPID, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, l := range loads {
		st := l.Stop()
		t.Logf("%v; %d of %d upgrades resumed a session", st, resumed, upgrades)
		if st.Failures != 0 {
			t.Errorf("%d failed requests: %v", st.Failures, st.Errors)
		}
		if len(st.Pids) != upgrades+1 {
			t.Errorf("%d generations served the load, want %d", len(st.Pids), upgrades+1)
		}
	}
	h2ok, h2failed, h2errs := h2.stop()
	t.Logf("http/2: %d requests, %d failures", h2ok, h2failed)
	if h2failed != 0 || h2ok == 0 {
		t.Errorf("http/2: %d requests, %d failed: %v", h2ok, h2failed, h2errs)
	}
	slices.Sort(latencies)
	t.Logf("upgrade latency (SIGHUP to new pid file): min %v, median %v, max %v",
		latencies[0], latencies[len(latencies)/2], latencies[len(latencies)-1])

	e.StopClean(t)
}

// Without -cert and -key, the generated certificate stays the same across
// upgrades (it travels in the state handoff), and sessions resume.
func TestGeneratedCertificateKept(t *testing.T) {
	t.Parallel()
	e := startExample(t)
	pinned := &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	_, cs := e.get(t, pinned)
	first := testcert.PeerFingerprint(cs)
	for i := 1; i <= 2; i++ {
		up, err := e.Upgrade(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		body, cs := e.get(t, pinned)
		if !strings.Contains(body, fmt.Sprintf("pid=%d ", up.NewPID)) || !cs.DidResume {
			t.Errorf("upgrade %d: %q resumed=%v", i, body, cs.DidResume)
		}
		_, cs = e.get(t, &tls.Config{InsecureSkipVerify: true})
		if got := testcert.PeerFingerprint(cs); got != first {
			t.Errorf("upgrade %d: certificate %s, want the generated %s", i, got, first)
		}
	}
	e.StopClean(t)
}

// A certificate file that is missing stops a first start with a clear
// error, and fails an upgrade without disturbing the serving generation,
// which leaks no descriptor; once the file is back, the upgrade works.
func TestMissingCertificate(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")

	t.Run("first start", func(t *testing.T) {
		out, code := program.Run(t, "-addr", "127.0.0.1:0", "-log", "json", "-cert", certFile, "-key", keyFile)
		if code != 1 || !strings.Contains(out, "tlstransport: load certificate") || !strings.Contains(out, "no such file or directory") {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		writeLeaf(t, ca, 1, certFile, keyFile)
		e := startExample(t, "-cert", certFile, "-key", keyFile)
		pid := e.PID()
		fds := countFds(t, pid)
		if err := syscall.Rename(certFile, certFile+".away"); err != nil {
			t.Fatal(err)
		}
		from := e.Stderr.Len()
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line, _ := e.Stderr.Wait(t, from, "upgrade failed, still serving", "no such file or directory")
		t.Log(line)
		if got := countFds(t, pid); got != fds {
			t.Errorf("serving generation had %d descriptors before the failed upgrade, %d after", fds, got)
		}
		body, _ := e.get(t, &tls.Config{RootCAs: ca.Pool})
		if !strings.Contains(body, fmt.Sprintf("pid=%d ", pid)) {
			t.Errorf("after the failed upgrade: %q, want pid %d", body, pid)
		}
		if err := syscall.Rename(certFile+".away", certFile); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Upgrade(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.StopClean(t)
	})
}
