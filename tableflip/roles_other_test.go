//go:build !linux

package tableflip_test

// roles is empty: roles run on Linux only.
var roles map[string]func() int
