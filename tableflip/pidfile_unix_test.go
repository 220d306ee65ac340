//go:build unix

package tableflip

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The undo of a refused ready restores a pid, never the bytes it read, and
// never through a symbolic link: a PID path that links to a private file
// must not end up holding that file's content, readable by everyone.
func TestPIDFileUndoDoesNotFollowSymlink(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("password=hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.pid")
	if err := os.Symlink(secret, path); err != nil {
		t.Fatal(err)
	}
	undo, err := writePIDFile(path, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "password=hunter2\n" {
		t.Fatalf("the link's target was written: %q", b)
	}
	undo()
	if b, err := os.ReadFile(path); err == nil {
		t.Fatalf("after undo the pid path holds %q, want it gone (it held no pid)", b)
	}
	if b, _ := os.ReadFile(secret); string(b) != "password=hunter2\n" {
		t.Fatalf("the link's target changed: %q", b)
	}
}

// Undo puts back the pid the file held, as a pid: other content is not
// restored, and a file written since by someone else is left alone.
func TestPIDFileUndoRestoresPid(t *testing.T) {
	for _, tc := range []struct {
		name, before string
		want         string // "" means removed
	}{
		{"pid", "4242\n", "4242\n"},
		{"pid without newline", "  4242 ", "4242\n"},
		{"not a pid", "hello world\n", ""},
		{"negative", "-3\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.pid")
			if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
				t.Fatal(err)
			}
			undo, err := writePIDFile(path, os.Getpid())
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(os.Getpid())+"\n" {
				t.Fatalf("pid file %q after write", b)
			}
			undo()
			b, err := os.ReadFile(path)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("after undo: %q, want no file", b)
			case tc.want != "" && string(b) != tc.want:
				t.Fatalf("after undo: %q %v, want %q", b, err, tc.want)
			}
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() != 0o644 {
				t.Errorf("restored file mode %v, want 0644", fi.Mode().Perm())
			}
		})
	}
	t.Run("written since", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.pid")
		os.WriteFile(path, []byte("4242\n"), 0o644)
		undo, err := writePIDFile(path, os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, []byte("5151\n"), 0o644)
		undo()
		if b, _ := os.ReadFile(path); string(b) != "5151\n" {
			t.Fatalf("undo overwrote a successor's pid: %q", b)
		}
	})
}

// A FIFO at the PID path neither hangs the write nor is read as a pid.
func TestPIDFileReadDoesNotBlockOnFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.pid")
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	if pid, ok := readPIDFile(path); ok {
		t.Fatalf("a FIFO read as pid %d", pid)
	}
}

// removePIDFile leaves alone a file that names someone else. The lock
// file is unlinked only while it is the one held. (A removal that fails is
// logged at the final stop: examples/http's TestFaultPIDFileDiskFullOrReadOnly
// shows it on a read-only directory.)
func TestRemovePIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.pid")
	os.WriteFile(path, []byte("1\n"), 0o644)
	if err := removePIDFile(path, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("removed a pid file that names another process: %v", err)
	}
	os.WriteFile(path, pidBytes(os.Getpid()), 0o644)
	if err := removePIDFile(path, os.Getpid()); err != nil {
		t.Fatal(err)
	}

	lock := pidLockPath(path)
	f, err := lockFile(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := lockFile(lock); err != ErrPIDFileLocked {
		t.Fatalf("second lock: %v, want ErrPIDFileLocked", err)
	}
	// Replaced by someone else: not ours to remove.
	os.Rename(lock, lock+".old")
	os.WriteFile(lock, nil, 0o644)
	if err := removeLockFile(lock, f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("removed a lock file we do not hold: %v", err)
	}
	os.Rename(lock+".old", lock)
	if err := removeLockFile(lock, f); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}
