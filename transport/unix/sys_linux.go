package unixtransport

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	abstractSupported  = true
	seqpacketSupported = true
	// Linux takes a path that fills all 108 bytes of sun_path without a
	// terminating NUL.
	maxPathLen = len(unix.RawSockaddrUnix{}.Path)
)

func socket(typ int) (int, error) {
	return unix.Socket(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// listenBacklog is the kernel's limit, as the net package uses it.
func listenBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return unix.SOMAXCONN
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return unix.SOMAXCONN
	}
	return min(n, 1<<16-1)
}
