package tableflip

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writePIDFile replaces path atomically: a reader sees the old pid or the
// new one, never a partial file. undo puts back what path held before (or
// removes it if it did not exist), unless another process has written it
// since: a child calls it when its parent gives up on it and serves on.
func writePIDFile(path string, pid int) (undo func(), err error) {
	old, rerr := os.ReadFile(path)
	if err := writeFileAtomic(path, []byte(strconv.Itoa(pid)+"\n")); err != nil {
		return nil, fmt.Errorf("tableflip: write pid file: %w", err)
	}
	return func() {
		if !pidFileNames(path, pid) {
			return
		}
		if rerr != nil {
			os.Remove(path)
			return
		}
		writeFileAtomic(path, old)
	}, nil
}

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
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func pidFileNames(path string, pid int) bool {
	b, err := os.ReadFile(path)
	return err == nil && string(bytes.TrimSpace(b)) == strconv.Itoa(pid)
}

// removePIDFile removes path if it still names pid: a successor may already
// have written its own.
func removePIDFile(path string, pid int) {
	if pidFileNames(path, pid) {
		os.Remove(path)
	}
}
