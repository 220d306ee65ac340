// Package proctest runs real processes for the tests of this module: a test
// binary re-executed as a server, whose generations report on a shared
// stdout pipe, one line per event. Every wait is on such a line, bounded by
// Timeout.
//
// A package whose tests use it has one TestMain, on every platform:
//
//	func TestMain(m *testing.M) { proctest.Main(m, roles) }
//
// where roles maps each role name to the function the re-executed binary
// runs (in a _linux_test.go file; elsewhere roles is nil).
//
// A role reports with Fatal and the event lines its test expects. The
// roles of a wrong-kind test, where a generation inherits a file that is
// not what its key names, are PassAndUpgrade and RefuseInherited, and the
// test checks their lines with Proc.ExpectRefused. ExpectError checks a
// call that must fail cleanly, leaking no descriptor (see OpenFds).
//
// Main, Fields and ShortDir build everywhere; the rest is Linux only.
package proctest
