//go:build !unix

package unixtransport

import "os"

const (
	abstractSupported  = false
	seqpacketSupported = false
	maxPathLen         = 108
)

const afUnix = 1

type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) { return fileID{}, ErrNotSupported }

func sockType(network string) int { return 0 }

func (lc *ListenConfig) create(network, path string) (*os.File, *socketMeta, error) {
	return nil, nil, ErrNotSupported
}
