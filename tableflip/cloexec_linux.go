package tableflip

import "golang.org/x/sys/unix"

// socketpairCloexec makes a stream socketpair that is close-on-exec from
// birth, so no process started meanwhile inherits it.
func socketpairCloexec() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
}
