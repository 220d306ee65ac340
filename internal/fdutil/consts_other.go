//go:build !unix

package fdutil

const (
	afInet = iota + 1
	afInet6
	afUnix
	sockStream
	sockDgram
	sockSeqpacket
)
