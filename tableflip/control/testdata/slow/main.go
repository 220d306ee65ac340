// Command slow is a build whose init waits: it opens the FIFO named by
// TFTEST_GATE and reads it to the end, then fails. A test holds an upgrade
// in progress for as long as it keeps the FIFO's write end open.
package main

import (
	"errors"
	"io"
	"os"

	"github.com/tableflip-go/tableflip/tableflip"
)

func main() {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		os.Exit(1)
	}
	if f, err := os.Open(os.Getenv("TFTEST_GATE")); err == nil {
		io.Copy(io.Discard, f)
		f.Close()
	}
	upg.Fail(errors.New("the slow build was released"))
	os.Exit(1)
}
