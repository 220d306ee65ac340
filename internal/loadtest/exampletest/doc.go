// Package exampletest runs an example program (examples/...) in its tests
// the way a user runs it: as processes of its own, started, upgraded with
// SIGHUP and stopped with SIGTERM through package loadtest, with the
// program's log in the test's log.
//
// A package's TestMain chooses how the program is had. Main builds it with
// `go build` (with -race when the tests run with -race):
//
//	var program exampletest.Program
//
//	func TestMain(m *testing.M) { exampletest.Main(m, &program) }
//
// MainOrRun makes the test binary itself the program, re-executed with
// TFTEST_ROLE=example (and so its generations too), which lets the tests
// reach into the program's own functions:
//
//	func TestMain(m *testing.M) { exampletest.MainOrRun(m, &program, run) }
//
// Either way a test then starts the program, which returns when its first
// generation is ready, and kills whatever is left of it when the test
// ends:
//
//	srv := program.Start(t, "-addr", "127.0.0.1:0") // and -pidfile
//	ln := srv.Listener(t)
//	load, _ := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: "http://" + ln.Addr + "/"}})
//	defer load.Stop()
//	srv.UpgradeUnderLoad(t, ln, 20, load)
//	srv.CheckStats(t, load.Stop())
//	srv.StopClean(t) // SIGTERM, exit status 0
//
// Server.Stdout and Server.Stderr keep what the generations print, line by
// line; Log.Wait waits for a line (an event, never a fixed time). A test
// that uses wrk as its judge starts with NeedWrk.
//
// The package compiles everywhere; what drives processes is Linux only, as
// in package loadtest.
package exampletest
