//go:build unix

package tableflip

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openNoFollow opens path for reading without following a symbolic link at
// its end, and without blocking on a FIFO.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
}

// lockFile opens path (creating it, never through a symbolic link) and takes
// an exclusive flock on it without waiting. It fails with ErrPIDFileLocked
// when someone else holds the lock.
func lockFile(path string) (*os.File, error) {
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o644)
		if err != nil {
			return nil, fmt.Errorf("tableflip: open pid file lock: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, ErrPIDFileLocked
			}
			return nil, fmt.Errorf("tableflip: lock %s: %w", path, err)
		}
		// The holder before us may have removed the file at its final
		// stop after we opened it: then our lock is on a file nobody
		// else will open. Hold the lock only on the file path names.
		var held, now unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &held); err != nil {
			f.Close()
			return nil, fmt.Errorf("tableflip: lock %s: %w", path, err)
		}
		if err := unix.Lstat(path, &now); err == nil && now.Dev == held.Dev && now.Ino == held.Ino {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("tableflip: lock %s: the file keeps being replaced", path)
}

// removeLockFile unlinks the lock file at path if it is still the one f
// holds.
func removeLockFile(path string, f *os.File) error {
	var held, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		return fmt.Errorf("tableflip: remove pid file lock: %w", err)
	}
	if err := unix.Lstat(path, &now); err != nil || now.Dev != held.Dev || now.Ino != held.Ino {
		return nil // removed or replaced by someone else
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("tableflip: remove pid file lock: %w", err)
	}
	return nil
}
