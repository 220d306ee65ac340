//go:build unix

package example_test

import (
	"fmt"
	"os"
	"syscall"

	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/internal/example"
	"github.com/tableflip-go/tableflip/tableflip"
)

// A generation handles the signals from before Ready until it has
// drained. Here the process sends itself SIGTERM, as `kill -TERM` would.
func ExampleHandleSignals() {
	log := zap.NewNop()
	upg, err := tableflip.New(tableflip.Options{Logger: log})
	if err != nil {
		panic(err)
	}
	defer upg.Stop()
	stopSignals := example.HandleSignals(log, upg) // before Ready
	defer stopSignals()
	if err := upg.Ready(); err != nil {
		panic(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	<-upg.Exit() // the next generation is ready, or SIGTERM
	fmt.Println("drain, then exit:", upg.State())
	// Output: drain, then exit: stopped
}
