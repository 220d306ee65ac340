//go:build !linux

package udp_test

// roles is empty: roles run on Linux only.
var roles map[string]func() int
