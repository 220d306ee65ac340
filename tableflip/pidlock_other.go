//go:build !unix

package tableflip

import "os"

func openNoFollow(path string) (*os.File, error) { return os.Open(path) }

func lockFile(path string) (*os.File, error) { return nil, ErrNotSupported }

func removeLockFile(path string, f *os.File) error { return ErrNotSupported }
