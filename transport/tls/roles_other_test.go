//go:build !linux

package tlstransport_test

// roles is empty: roles run on Linux only.
var roles map[string]func() int
