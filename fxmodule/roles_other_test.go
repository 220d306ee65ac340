//go:build !linux

package fxmodule_test

// roles is empty: roles run on Linux only.
var roles map[string]func() int
