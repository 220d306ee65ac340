package tableflipprom_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tableflip-go/tableflip/examples/metrics/tableflipprom"
	"github.com/tableflip-go/tableflip/tableflip"
	"github.com/tableflip-go/tableflip/transport/tcp"
)

// A first generation: it created its listener through the Collector's
// Fds, and has had no upgrade yet.
func ExampleNew() {
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		panic(err)
	}
	defer upg.Stop()
	metrics, err := tableflipprom.New(upg) // before any listener
	if err != nil {
		panic(err)
	}
	defer metrics.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics)

	ln, err := tcp.Listen(context.Background(), metrics.Fds(), "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	if err := upg.Ready(); err != nil {
		panic(err)
	}

	n, err := testutil.GatherAndCount(reg, "tableflip_upgrades_total")
	fmt.Println("upgrade series:", n, err)
	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP tableflip_generation Generation of the serving process: 1 for a process started without a parent, one more at each upgrade.
# TYPE tableflip_generation gauge
tableflip_generation 1
# HELP tableflip_created_files Files this generation created and passes on (a listener on a new address), by transport. Inherited files are passed on too: they are in tableflip_inherited_files.
# TYPE tableflip_created_files gauge
tableflip_created_files{transport="tcp"} 1
`), "tableflip_generation", "tableflip_created_files")
	fmt.Println("compare:", err)
	// Output:
	// upgrade series: 0 <nil>
	// compare: <nil>
}

// The reason label of a failed upgrade.
func ExampleReason() {
	err := &tableflip.ChildError{Pid: 4250, Reason: "tcp: listen tcp 127.0.0.1:99999: invalid port", ExitStatus: 1}
	fmt.Println(tableflipprom.Reason(err))
	fmt.Println(tableflipprom.Reason(fmt.Errorf("%w during the upgrade", tableflip.ErrStopped)))
	fmt.Println(tableflipprom.Reason(nil))
	// Output:
	// child_failed
	// stopped
	// none
}
