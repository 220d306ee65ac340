package statestream_test

import (
	"fmt"
	"strconv"

	"github.com/tableflip-go/tableflip/examples/counter/statestream"
	"github.com/tableflip-go/tableflip/tableflip"
)

// A first generation (no parent): the stream is caught up at once, and
// Update only changes the state until an upgrade starts. After Close, the
// writes belong to the next generation.
func Example() {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		fmt.Println(err) // ErrNotSupported on Windows
		return
	}
	defer upg.Stop()

	var n int64
	s, err := statestream.Open(upg, "counter", statestream.Config{
		Snapshot: func() []byte { return strconv.AppendInt(nil, n, 10) },
		Restore: func(b []byte) (err error) {
			n, err = strconv.ParseInt(string(b), 10, 64)
			return err
		},
		Apply: func([]byte) error { n++; return nil },
	})
	if err != nil {
		panic(err)
	}
	<-s.CaughtUp()
	if err := upg.Ready(); err != nil {
		panic(err)
	}
	for range 3 {
		s.Update(func() []byte { n++; return nil }) // then acknowledge
	}
	s.Close() // after the drain
	fmt.Println(n, s.Update(func() []byte { n++; return nil }))
	// Output: 3 statestream: closed, the next generation takes the writes
}
