package fxmodule_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tableflip-go/tableflip/fxmodule"
	"github.com/tableflip-go/tableflip/tableflip"
)

// roles are the programs the test binary plays when re-executed.
var roles = map[string]func() int{"app": appMain}

// appMain is the fx app the real-process tests upgrade: the test binary
// re-executed with TFTEST_ROLE=app. TFFX_MODE says how this generation
// behaves; the mode of the next one is read, at each upgrade, from the file
// TFFX_CHILD_MODE_FILE names. Every generation prints one line per event
// on the stdout they share:
//
//	STARTED pid=P mode=M
//	READY pid=P gen=G addr=A         the Upgrader is ready
//	UPGRADED pid=P err=E             what Upgrade returned to the trigger
//	EXIT pid=P                       fx's Run returned
//
// and logs with zap to stdout, one line per entry: LEVEL<tab>message<tab>fields.
func appMain() int {
	mode := os.Getenv("TFFX_MODE")
	pid := os.Getpid()
	fmt.Printf("STARTED pid=%d mode=%s\n", pid, mode)
	log := zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
			LevelKey: "level", MessageKey: "msg",
			EncodeLevel: zapcore.CapitalLevelEncoder, EncodeDuration: zapcore.StringDurationEncoder,
		}),
		zapcore.Lock(os.Stdout), zapcore.InfoLevel,
	))
	opts := []fx.Option{
		fx.Supply(log),
		fx.WithLogger(func(log *zap.Logger) fxevent.Logger {
			zl := &fxevent.ZapLogger{Logger: log}
			if mode == "fail-start-nolog" {
				return zl
			}
			return fxmodule.EventLogger(zl)
		}),
		fxmodule.Module,
		fx.Supply(fxmodule.Config{Options: tableflip.Options{
			UpgradeTimeout: 60 * time.Second,
			Next: func(ctx context.Context, def *exec.Cmd) error {
				b, err := os.ReadFile(os.Getenv("TFFX_CHILD_MODE_FILE"))
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
				def.Env = append(def.Env, "TFFX_MODE="+strings.TrimSpace(string(b)))
				return nil
			},
		}}),
		fxmodule.Listener("http", "tcp://127.0.0.1:0"),
		fxmodule.ServeHTTP("http", newTestServer),
		fx.Invoke(fx.Annotate(func(ln net.Listener, upg *tableflip.Upgrader) {
			upg.AddHooks(tableflip.Hooks{Ready: func() {
				fmt.Printf("READY pid=%d gen=%d addr=%s\n", pid, upg.Generation(), ln.Addr())
			}})
		}, fx.ParamTags(`name:"http"`))),
		// SIGHUP, as by default, and a line with each result.
		fxmodule.WithTrigger(fxmodule.TriggerFunc(func(upgrade func(context.Context) error) func() {
			return fxmodule.Signal(syscall.SIGHUP).Start(func(ctx context.Context) error {
				err := upgrade(ctx)
				fmt.Printf("UPGRADED pid=%d err=%v\n", pid, err)
				return err
			})
		})),
	}
	switch mode {
	case "fail-start", "fail-start-nolog":
		opts = append(opts, fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.StartHook(func() error { return errors.New("boom: database unreachable") }))
		}))
	case "fail-new":
		type db struct{}
		opts = append(opts,
			fx.Provide(func() (*db, error) { return nil, errors.New("boom: config invalid") }),
			fx.Invoke(func(*db) {}))
	}
	fx.New(opts...).Run()
	fmt.Printf("EXIT pid=%d\n", pid)
	return 0
}
