package control

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit codes of Command.
const (
	ExitOK      = 0 // done
	ExitFailed  = 1 // the upgrade failed, or the service could not be reached
	ExitUsage   = 2 // bad arguments
	ExitRefused = 3 // the service refused the caller (SO_PEERCRED)
)

const usage = `usage: %[1]s -socket PATH [-timeout D] upgrade [-from PID]
       %[1]s -socket PATH [-timeout D] stop
       %[1]s -socket PATH [-timeout D] status

upgrade  asks the service for an upgrade and waits for it: prints the new
         generation's pid and exits 0, or prints why it failed (the new
         generation's own reason) and exits 1. A request made while an
         upgrade runs waits for that upgrade's result.
         -from PID: upgrade from that generation ($MAINPID in ExecReload=);
         if it was upgraded already, print the generation it upgraded to.
stop     stops the service and waits until every generation has exited,
         older ones still draining included; prints their pids.
status   prints the serving generation and the ones still draining.
`

// Command is the upgrade command: a service can run it from its own binary
// (for example when its first argument is "ctl") instead of shipping
// cmd/tableflipctl. args excludes the program name, which name is.
func Command(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, usage, name) }
	socket := fs.String("socket", "", "the service's control socket")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *socket == "" || fs.NArg() < 1 {
		fs.Usage()
		return ExitUsage
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()

	var err error
	switch op, rest := fs.Arg(0), fs.Args()[1:]; op {
	case "upgrade":
		ufs := flag.NewFlagSet(name+" upgrade", flag.ContinueOnError)
		ufs.SetOutput(stderr)
		from := ufs.Int("from", 0, "upgrade from the generation with this `pid`")
		if ufs.Parse(rest) != nil || ufs.NArg() > 0 {
			fs.Usage()
			return ExitUsage
		}
		var pid int
		if pid, err = RequestUpgrade(ctx, *socket, *from); err == nil {
			fmt.Fprintln(stdout, pid)
		}
	case "stop":
		if len(rest) > 0 {
			fs.Usage()
			return ExitUsage
		}
		var gens []Generation
		if gens, err = RequestStop(ctx, *socket); err == nil {
			for _, g := range gens {
				fmt.Fprintf(stdout, "generation %d (pid %d) exited\n", g.Generation, g.Pid)
			}
		}
	case "status":
		if len(rest) > 0 {
			fs.Usage()
			return ExitUsage
		}
		var st Status
		if st, err = RequestStatus(ctx, *socket); err == nil {
			fmt.Fprintf(stdout, "serving: generation %d (pid %d)\n", st.Serving.Generation, st.Serving.Pid)
			for _, g := range st.Draining {
				fmt.Fprintf(stdout, "draining: generation %d (pid %d)\n", g.Generation, g.Pid)
			}
			if st.Upgrading {
				fmt.Fprintln(stdout, "upgrading")
			}
		}
	default:
		fs.Usage()
		return ExitUsage
	}
	if err == nil {
		return ExitOK
	}
	var ue *UpgradeError
	switch {
	case errors.As(err, &ue) && ue.Reason != "":
		fmt.Fprintf(stderr, "%s: upgrade failed: %s\n%s: %s\n", name, ue.Reason, name, ue.Message)
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	if errors.Is(err, ErrRefused) {
		return ExitRefused
	}
	return ExitFailed
}
