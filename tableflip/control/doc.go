// Package control lets a deploy script, or a systemd unit's ExecReload=
// and ExecStop=, ask a running tableflip service for an upgrade or a stop
// and wait for the result, over a private unix socket.
//
// The service serves the socket with Listen, in every generation, before
// Ready:
//
//	ctl, err := control.Listen(ctx, upg, "/run/app/control.sock", control.Options{})
//	if err != nil { upg.Fail(err); return err }
//	defer ctl.Close()
//
// and the command (cmd/tableflipctl, or Command run from the service's own
// binary) asks:
//
//	tableflipctl -socket /run/app/control.sock upgrade   # prints the new pid, exit 0
//	tableflipctl -socket /run/app/control.sock stop      # returns when every generation has exited
//
// # The socket
//
// The socket is created by the first generation with mode 0600 and passed
// to every later generation with the unix transport, so the path stays
// bound across upgrades and is removed at the final stop. Only the serving
// generation answers: a generation starts answering when it is ready and
// stops when it has handed over. Every connection's peer is checked with
// SO_PEERCRED: a uid other than the service's own or root's is refused
// (the command exits 3), whatever the file's mode.
//
// # Upgrade
//
// An upgrade request calls the Upgrader's Upgrade and answers with its
// result: the new generation's pid, or an *UpgradeError that carries the
// new generation's own reason (tableflip.ChildError.Reason), which the
// command prints before exiting 1. A request that arrives while an
// upgrade is in progress, started by another request or by the program
// itself (a SIGHUP handler calling Upgrade), waits for that upgrade and
// gets the same result; it never starts a second one. With from set to the
// pid of the generation to upgrade from (systemd's $MAINPID), a request
// that reaches the generation which that one already upgraded to gets
// that upgrade's success.
//
// # Stop
//
// A stop request is answered with a pidfd (SCM_RIGHTS) for the serving
// generation and for every older generation still draining: each
// generation passes its successor pidfds for itself and for the older ones
// still running, as companion files of the upgrade. The serving generation
// then stops the way the program stops on SIGTERM (Options.Stop to change
// that), and the client waits until every pidfd says its process has
// exited. That is what makes systemctl stop drain after upgrades: see
// docs/systemd.md.
//
// The package needs SO_PEERCRED and pidfds (Linux 5.3); elsewhere Listen
// and the requests return tableflip.ErrNotSupported.
package control
