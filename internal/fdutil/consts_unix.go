//go:build unix

package fdutil

import "golang.org/x/sys/unix"

const (
	afInet        = unix.AF_INET
	afInet6       = unix.AF_INET6
	afUnix        = unix.AF_UNIX
	sockStream    = unix.SOCK_STREAM
	sockDgram     = unix.SOCK_DGRAM
	sockSeqpacket = unix.SOCK_SEQPACKET
)
