//go:build linux

// Package proctest runs real processes for the tests of this module: a test
// binary re-executed as a server, whose generations report on a shared
// stdout pipe, one line per event. Every wait is on such a line, bounded by
// Timeout. It is Linux only.
package proctest
