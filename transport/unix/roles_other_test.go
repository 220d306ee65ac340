//go:build !linux

package unixtransport_test

// roles is empty: roles run on Linux only.
var roles map[string]func() int
