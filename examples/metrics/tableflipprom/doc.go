// Package tableflipprom exports the lifecycle of a tableflip Upgrader as
// Prometheus metrics: the generation, the upgrades by result and reason,
// how long upgrades and drains take, and the files a generation inherited
// and passes on. It uses tableflip's public API only: Hooks for the
// upgrades, a wrapper around tableflip.Fds for the files, and a companion
// file of each upgrade (Handoff.AddFile) to carry the counts to the next
// generation.
//
// # Why the counts travel
//
// After an upgrade the process that counted it is gone: it drains and
// exits, and the new generation, a new process, serves /metrics on the
// inherited socket. Counts kept per process would start from zero at every
// upgrade, so that a successful upgrade would never be seen at all. So
// each generation hands its counts to the next: when an upgrade starts, it
// writes them to a socketpair whose other end the child inherits, and
// after a successful upgrade it keeps that link until it exits, to send
// its drain's duration. The serving generation exports everything since
// the first one: its counters only grow, like those of a process that
// never restarts. (A service restarted for good starts from zero, as any
// process does.)
//
// # Use
//
// Create the Collector right after tableflip.New, before any listener,
// so that its hooks run first and it claims its companion file before
// Ready; pass its Fds to the transports so that it counts their files;
// register it; report the drain:
//
//	upg, _ := tableflip.New(tableflip.Options{...})
//	defer upg.Stop()
//	metrics, err := tableflipprom.New(upg)
//	...
//	defer metrics.Close()
//	prometheus.MustRegister(metrics)
//	ln, _ := tcp.Listen(ctx, metrics.Fds(), "tcp", addr)
//	...
//	<-upg.Exit()
//	start := time.Now()
//	err = srv.Drain(ctx)
//	metrics.ObserveDrain(time.Since(start))
//
// docs/metrics.md lists the metrics and their labels, with queries.
package tableflipprom
