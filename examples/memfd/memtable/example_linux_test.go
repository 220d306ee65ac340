package memtable_test

import (
	"context"
	"fmt"
	"log"

	"github.com/tableflip-go/tableflip/examples/memfd/memtable"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/tableflip/tablefliptest"
)

// A table opened by name. A service passes its *tableflip.Upgrader; here
// tablefliptest's, which never upgrades, so the table is created.
func ExampleOpen() {
	upg := tablefliptest.New(nil)
	defer upg.Stop()

	c, err := tableflip.Open(context.Background(), upg, "memfd://counters?slots=1024")
	if err != nil {
		log.Fatal(err)
	}
	table := c.(*memtable.Table)
	defer table.Close()

	table.Add("apples", 3)
	n, _ := table.Add("apples", 2)
	fmt.Println("apples:", n)
	fmt.Println("inherited:", table.Info().Inherited, "owner:", table.Owner())
	// Output:
	// apples: 5
	// inherited: false owner: true
}
