// Command broken is a build that cannot start: deployed over the service's
// binary, it makes the next upgrade fail with its own reason.
package main

import (
	"errors"
	"os"

	"github.com/tableflip-go/tableflip/tableflip"
)

func main() {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		os.Exit(1)
	}
	upg.Fail(errors.New("config check failed: no such setting \"listen\" (the broken build)"))
	os.Exit(1)
}
