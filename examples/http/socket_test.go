//go:build linux

package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/loadtest/exampletest"
	"github.com/tableflip-go/tableflip/internal/proctest"
)

// TestUnixSocketUnderLoadThroughUpgrades serves HTTP on -socket PATH
// through 3 upgrades under load: no request fails, a checker that stats
// the path in a tight loop never finds it missing (or replaced by another
// file), every generation holds the one listening socket, and after
// SIGTERM the path is gone. (transport/unix's own test drives 20
// upgrades through the same path; this one checks the program's -socket.)
func TestUnixSocketUnderLoadThroughUpgrades(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "http.sock")
	srv := program.Start(t, "-socket", path)
	ln := srv.Listener(t)
	if ln.Network != "unix" || ln.Addr != path {
		t.Fatalf("the server listens on %s %s, want unix %s", ln.Network, ln.Addr, path)
	}
	fileIno := inode(t, path)

	watch := proctest.WatchPath(t, path, fileIno)

	loads := exampletest.StartLoads(t, loadtest.Target{URL: "http://unix/", UnixSocket: path}, 4)
	srv.UpgradeUnderLoad(t, ln, 3, loads...)
	srv.StopLoads(t, loads...)
	watch.Check(t)
	t.Logf("checker: %v", watch)

	srv.StopClean(t)
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after SIGTERM: lstat %s: %v, want it gone", path, err)
	}
}

// TestUnixSocketStaleAfterSIGKILL: a server killed with SIGKILL leaves its
// socket file behind; the next start replaces it and serves.
func TestUnixSocketStaleAfterSIGKILL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "http.sock")
	srv := program.Start(t, "-socket", path)
	exit, err := srv.Signal(context.Background(), syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	if exit.Signal != syscall.SIGKILL {
		t.Fatalf("SIGKILL: %v", exit)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("after SIGKILL: %v %v, want the stale socket file", fi, err)
	}
	if c, err := net.Dial("unix", path); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial the stale socket: %v, want ECONNREFUSED", err)
	}
	staleIno := inode(t, path)
	// A second name keeps the stale inode allocated, so the new file
	// cannot reuse its number.
	if err := os.Link(path, path+".stale"); err != nil {
		t.Fatal(err)
	}

	srv2 := program.Start(t, "-socket", path)
	if got := inode(t, path); got == staleIno {
		t.Errorf("the socket file is still the stale one (inode %d)", got)
	}
	if pid := getPID(t, path); pid != srv2.PID() {
		t.Errorf("GET / answered by pid %d, want %d", pid, srv2.PID())
	}
	srv2.StopClean(t)
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after SIGTERM: lstat %s: %v, want it gone", path, err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func getPID(t *testing.T, path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadtest.DefaultTimeout)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://unix/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	pid, ok := loadtest.ParsePID(body)
	if resp.StatusCode != http.StatusOK || !ok {
		t.Fatalf("GET /: %s %q", resp.Status, body)
	}
	return pid
}
