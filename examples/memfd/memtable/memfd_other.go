//go:build !linux

package memtable

import "os"

const supported = false

func createMemfd(name string, size int) (*os.File, []byte, error) {
	return nil, nil, ErrNotSupported
}

func mapMemfd(f *os.File) ([]byte, error) { return nil, ErrNotSupported }

func unmap(mem []byte) error { return nil }

func inodeOf(f *os.File) uint64 { return 0 }
