// Command tableflipctl asks a running tableflip service for an upgrade, or
// to stop, over the service's control socket (package
// tableflip/control), and waits for the result. It is meant for deploy
// scripts and for a systemd unit's ExecReload= and ExecStop=:
//
//	tableflipctl -socket /run/app/control.sock upgrade   # prints the new pid
//	tableflipctl -socket /run/app/control.sock stop      # waits for every generation
//	tableflipctl -socket /run/app/control.sock status
//
// It exits 0 when done, 1 when the upgrade failed (with the new
// generation's own reason on stderr) or the service could not be reached,
// 2 for bad arguments and 3 when the service refused the caller: only the
// service's own user and root may control it.
package main

import (
	"os"

	"github.com/tableflip-go/tableflip/tableflip/control"
)

func main() {
	os.Exit(control.Command("tableflipctl", os.Args[1:], os.Stdout, os.Stderr))
}
