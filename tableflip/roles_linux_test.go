package tableflip_test

import (
	"fmt"

	"github.com/tableflip-go/tableflip/internal/proctest"
)

func runRole(role string) int {
	switch role {
	case "server":
		return serverMain()
	case "systemd":
		return systemdMain()
	case "bench-child":
		return benchChildMain()
	case "bench-baseline":
		return benchBaselineMain()
	case "fakechild":
		return fakeChildMain()
	}
	fmt.Printf("FATAL unknown role %q\n", role)
	return 2
}

func setup() {
	if err := proctest.SetSubreaper(); err != nil {
		panic(err)
	}
}
