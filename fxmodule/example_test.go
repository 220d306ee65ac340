package fxmodule_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"

	"github.com/tableflip-go/tableflip/fxmodule"
	_ "github.com/tableflip-go/tableflip/transport/tcp"
)

// An fx app whose HTTP server survives upgrades. A real program calls
// app.Run(), which waits for SIGTERM or for an upgrade to finish; this one
// starts, answers one request, and stops.
func Example() {
	var addr string
	app := fx.New(
		fx.Supply(zap.NewNop()), // the app's logger; fxmodule uses it
		fx.WithLogger(func(log *zap.Logger) fxevent.Logger { return &fxevent.ZapLogger{Logger: log} }),
		fxmodule.Module,
		fxmodule.Listener("http", "tcp://127.0.0.1:0"),
		fxmodule.ServeHTTP("http", func() *http.Server {
			return &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintln(w, "hello")
				}),
				ReadHeaderTimeout: 10 * time.Second,
			}
		}),
		fx.Invoke(fx.Annotate(func(ln net.Listener, lc fx.Lifecycle) {
			lc.Append(fx.StartHook(func() { fmt.Println("listening") }))
			addr = ln.Addr().String()
		}, fx.ParamTags(`name:"http"`))),
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	resp, err := http.Get("http://" + addr + "/")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(string(body))
	}
	http.DefaultClient.CloseIdleConnections()
	if err := app.Stop(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// listening
	// hello
}

// A Drainer for a server that is not net/http: stop accepting, finish the
// work in flight, within ctx.
func ExampleAsDrainer() {
	type jobServer struct{ fxmodule.DrainerFunc }
	newJobServer := func() *jobServer {
		return &jobServer{func(ctx context.Context) error {
			fmt.Println("drained")
			return nil
		}}
	}
	app := fx.New(
		fx.NopLogger,
		fxmodule.Module,
		fx.Provide(fxmodule.AsDrainer(newJobServer)),
		fxmodule.WithTrigger(fxmodule.NoTrigger),
	)
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	app.Stop(ctx)
	// Output: drained
}

// A trigger that upgrades on SIGUSR2 instead of SIGHUP.
func ExampleWithTrigger() {
	_ = fx.Options(
		fxmodule.Module,
		fxmodule.WithTrigger(fxmodule.Signal(sigusr2)),
	)
}
