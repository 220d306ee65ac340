package fxmodule_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/tableflip-go/tableflip/fxmodule"
	"github.com/tableflip-go/tableflip/tableflip"
)

// A generation accepts nothing before the commit: ServeHTTP serves only
// once the Upgrader's Ready has returned nil, after the app's last OnStart
// hook. A request sent during start waits in the listening socket's
// backlog and is answered after Ready.
func TestServesOnlyAfterReady(t *testing.T) {
	var ready, servedEarly, answeredEarly atomic.Bool
	var conn net.Conn
	app := fxtest.New(t,
		fx.NopLogger,
		fxmodule.Module,
		fxmodule.Listener("http", "tcp://127.0.0.1:0"),
		fxmodule.ServeHTTP("http", func() *http.Server {
			return &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !ready.Load() {
					servedEarly.Store(true)
				}
				io.WriteString(w, "ok")
			})}
		}),
		fxmodule.WithTrigger(fxmodule.NoTrigger),
		// The server is built (and its hooks appended) before this
		// invoke appends the hook that looks.
		fx.Invoke(fx.Annotate(func(ln net.Listener, _ []fxmodule.Drainer, lc fx.Lifecycle, upg *tableflip.Upgrader) {
			upg.AddHooks(tableflip.Hooks{Ready: func() { ready.Store(true) }})
			lc.Append(fx.StartHook(func() error {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return err
				}
				conn = c
				if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
					return err
				}
				// Nobody may answer yet. (A server that did would
				// answer well within this bound.)
				c.SetReadDeadline(time.Now().Add(time.Second))
				if n, _ := c.Read(make([]byte, 1)); n > 0 {
					answeredEarly.Store(true)
				}
				return nil
			}))
		}, fx.ParamTags(`name:"http"`, `group:"tableflip.drainers"`))),
	)
	app.RequireStart()
	defer app.RequireStop()
	defer func() { conn.Close() }()
	if answeredEarly.Load() || servedEarly.Load() {
		t.Fatal("the server answered before this generation was ready")
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the request sent during start was not answered after Ready: %v", err)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.0 200") || !strings.HasSuffix(string(b), "ok") {
		t.Fatalf("answer %q", b)
	}
}
