package steer_test

import (
	"fmt"

	"github.com/tableflip-go/tableflip/transport/udp/steer"
)

// A connection ID tagged with generation 3, and what a router reads from a
// short-header datagram that carries it.
func ExampleCodec() {
	codec := steer.NewCodec([16]byte{ /* the secret all generations share */ })
	id := make([]byte, steer.IDLen)
	codec.Generate(id, steer.Tag(3))

	datagram := append([]byte{0x40}, id...) // short header
	datagram = append(datagram, "protected payload"...)
	kind, dcid := steer.Classify(datagram)
	tag, ok := codec.Tag(dcid)
	fmt.Println(kind == steer.KindShort, tag, ok)

	random := []byte{1, 2, 3, 4, 5, 6, 7, 8} // a client's own choice
	_, ok = codec.Tag(random)
	fmt.Println(ok)
	// Output:
	// true 3 true
	// false
}
