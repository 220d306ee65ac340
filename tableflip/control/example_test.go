package control_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/control"
)

// A service serves the control socket in every generation, before Ready.
func ExampleListen() {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		panic(err)
	}
	defer upg.Stop()
	ctl, err := control.Listen(context.Background(), upg, "/run/app/control.sock", control.Options{})
	if err != nil {
		upg.Fail(err) // the previous generation keeps serving and logs why
		return
	}
	defer ctl.Close()
	// ... listen, serve, then:
	upg.Ready()
}

// A service embeds the command in its own binary: "app ctl upgrade".
func ExampleCommand() {
	if len(os.Args) > 1 && os.Args[1] == "ctl" {
		os.Exit(control.Command("app ctl", os.Args[2:], os.Stdout, os.Stderr))
	}
}

// A deploy script written in Go asks for an upgrade and gets the new
// generation's own reason when it fails.
func ExampleRequestUpgrade() {
	pid, err := control.RequestUpgrade(context.Background(), "/run/app/control.sock", 0)
	var ue *control.UpgradeError
	switch {
	case err == nil:
		fmt.Println("serving:", pid)
	case errors.As(err, &ue):
		fmt.Println("upgrade failed:", ue.Reason)
	default:
		fmt.Println(err)
	}
}
