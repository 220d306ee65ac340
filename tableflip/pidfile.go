package tableflip

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"go.uber.org/zap"
)

// ErrPIDFileLocked is returned by New when another running instance holds
// the lock of Options.PIDFile: two services given the same PID file would
// otherwise take it from each other, and the first could no longer be
// reached through it.
var ErrPIDFileLocked = errors.New("tableflip: pid file in use by a running instance")

// pidLockTransport is the name under which the PID file's lock is passed
// from generation to generation.
const pidLockTransport = "tableflip.pidlock"

// pidLockPath is the lock file of the PID file at path. The PID file itself
// cannot carry the lock: it is replaced by rename, and a lock belongs to one
// inode.
func pidLockPath(path string) string { return path + ".lock" }

// lockPIDFile makes this generation a holder of the PID file's lock, so that
// a second instance given the same PID file refuses to start. The lock is a
// flock on the lock file, which belongs to one open file description: the
// first generation creates and locks it, every generation passes the same
// description on, and so the lock is held as long as any generation of this
// service runs, without ever being released and taken again (no race with a
// second instance at an upgrade), and without keeping a child from writing
// the PID file when it becomes ready.
//
// Only a lock held by someone else is an error: the caller then fails this
// generation (Fail), which tells a parent why. When the lock file cannot be
// created (the directory is missing or read-only), New goes on without it
// and Ready's write of the PID file says what is wrong.
//
// This process keeps a descriptor of its own until it exits, or until the
// final stop, which unlinks the lock file while still holding the lock: an
// instance that opened the file just before then finds, once it has the
// lock, that the path no longer leads to it, and tries again (lockFile).
func (u *Upgrader) lockPIDFile() error {
	if u.opts.PIDFile == "" {
		return nil
	}
	lock := pidLockPath(u.opts.PIDFile)
	f, _, err := u.Inherit(pidLockTransport, lock)
	if err != nil {
		// No parent, or one that held no lock (another PID file, or a
		// version without locks).
		f, err = lockFile(lock)
		if errors.Is(err, ErrPIDFileLocked) {
			err = fmt.Errorf("%w: %s is locked, by the generation whose pid is in %s (%s)",
				ErrPIDFileLocked, lock, u.opts.PIDFile, describePIDFile(u.opts.PIDFile))
			u.log.Error("pid file locked", zap.Int("pid", os.Getpid()), zap.String("pid_file", u.opts.PIDFile), zap.Error(err))
			return err
		}
		if err != nil {
			u.log.Warn("pid file not locked", zap.Int("pid", os.Getpid()), zap.String("pid_file", u.opts.PIDFile), zap.Error(err))
			return nil
		}
		if err := u.Pass(pidLockTransport, lock, f, nil); err != nil {
			f.Close()
			return err
		}
	}
	u.AddHooks(Hooks{FinalStop: func() {
		if err := removeLockFile(lock, f); err != nil {
			u.log.Error("pid file lock left behind", zap.Int("pid", os.Getpid()), zap.Error(err))
		}
		f.Close()
	}})
	return nil
}

func describePIDFile(path string) string {
	pid, ok := readPIDFile(path)
	if !ok {
		return "no pid in it"
	}
	return "pid " + strconv.Itoa(pid)
}

// writePIDFile replaces path atomically: a reader sees the old pid or the
// new one, never a partial file. undo puts back the pid that path held
// before (or removes path if it held none), unless another process has
// written it since: a child calls it when its parent gives up on it and
// serves on. Only a pid is ever restored, never the bytes read: path is
// opened without following a symbolic link, so undo cannot copy the content
// of the file a link points to into a file that everyone may read.
func writePIDFile(path string, pid int) (undo func(), err error) {
	old, hadPID := readPIDFile(path)
	if err := writeFileAtomic(path, pidBytes(pid)); err != nil {
		return nil, fmt.Errorf("tableflip: write pid file: %w", err)
	}
	return func() {
		if !pidFileNames(path, pid) {
			return
		}
		if !hadPID {
			os.Remove(path)
			return
		}
		writeFileAtomic(path, pidBytes(old))
	}, nil
}

func pidBytes(pid int) []byte { return []byte(strconv.Itoa(pid) + "\n") }

// writeFileAtomic replaces path by rename, so that a reader sees the old
// content or the new, never a part. It does not fsync: a PID file is
// advisory, lives on /run (tmpfs) or the like, and names a process that a
// power cut ends anyway, so durability buys nothing. The flush, though,
// was a disk write on the path from SIGHUP to ready (the child writes the
// PID file before it tells its parent it is ready): 11 to 67 ms under load
// in bench/analysis.md's trace, against well under one for the rename.
func writeFileAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// rename replaces a symbolic link at path, it does not follow it.
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// readPIDFile returns the pid in the regular file at path. A symbolic link,
// a file of another kind, or content that is not a pid give false.
func readPIDFile(path string) (int, bool) {
	f, err := openNoFollow(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func pidFileNames(path string, pid int) bool {
	p, ok := readPIDFile(path)
	return ok && p == pid
}

// removePIDFile removes path if it still names pid: a successor may already
// have written its own. The error says why it could not.
func removePIDFile(path string, pid int) error {
	if !pidFileNames(path, pid) {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("tableflip: remove pid file: %w", err)
	}
	return nil
}
