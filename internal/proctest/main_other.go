//go:build !linux

package proctest

// becomeReaper does nothing: roles run on Linux only.
func becomeReaper() error { return nil }
