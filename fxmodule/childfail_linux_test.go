package fxmodule_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tableflip-go/tableflip/internal/loadtest"
	"github.com/tableflip-go/tableflip/internal/proctest"
)

// TestChildStartFailure upgrades a running fx app (a real process) to new
// generations whose fx app fails to start, under load: each time, the
// error reaches the old generation's caller of Upgrade and its log, the
// old generation keeps serving, and no request fails. Then a good upgrade
// goes through.
func TestChildStartFailure(t *testing.T) {
	t.Parallel()
	modeFile := filepath.Join(t.TempDir(), "mode")
	p := proctest.Start(t, "app", "TFFX_CHILD_MODE_FILE="+modeFile)
	var parent, gen int
	var addr string
	if _, err := fmt.Sscanf(p.Expect("READY "), "READY pid=%d gen=%d addr=%s", &parent, &gen, &addr); err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/"

	var loads []*loadtest.Load
	for _, mode := range []loadtest.Mode{loadtest.NewConnection, loadtest.KeepAlive} {
		l, err := loadtest.Start(loadtest.Config{Target: loadtest.Target{URL: url}, Mode: mode, Clients: 4})
		if err != nil {
			t.Fatal(err)
		}
		loads = append(loads, l)
	}
	stopLoads := func() {
		for _, l := range loads {
			st := l.Stop()
			t.Logf("load %v", st)
			if st.Failures != 0 || st.Requests == 0 {
				t.Errorf("load %v", st)
			}
		}
		loads = nil
	}
	defer func() { stopLoads() }()

	for _, tc := range []struct{ mode, reason string }{
		{"fail-start", "boom: database unreachable"},
		{"fail-new", "boom: config invalid"},
		// Without fxmodule.EventLogger the reason is the same: Module
		// sees the failing OnStart hook itself.
		{"fail-start-nolog", "boom: database unreachable"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			if err := os.WriteFile(modeFile, []byte(tc.mode), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(parent, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			// The caller of Upgrade gets the child's own reason.
			line := p.Expect(fmt.Sprintf("UPGRADED pid=%d ", parent))
			if !strings.Contains(line, "tableflip: child ") || !strings.Contains(line, tc.reason) {
				t.Errorf("Upgrade returned\n%s\nwant the child's reason %q", line, tc.reason)
			}
			// So does the log.
			line = p.Expect("ERROR\tupgrade failed, this generation keeps serving")
			if !strings.Contains(line, tc.reason) {
				t.Errorf("log line\n%s\nlacks the child's reason %q", line, tc.reason)
			}
			// The old generation still serves.
			if got, want := get(t, addr), fmt.Sprintf("pid=%d\n", parent); got != want {
				t.Errorf("GET / = %q, want %q", got, want)
			}
		})
	}

	// A good upgrade after the failed ones.
	if err := os.WriteFile(modeFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(parent, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if line := p.Expect(fmt.Sprintf("UPGRADED pid=%d ", parent)); !strings.HasSuffix(line, "err=<nil>") {
		t.Fatalf("good upgrade: %s", line)
	}
	var child int
	if _, err := fmt.Sscanf(p.Expect("READY "), "READY pid=%d gen=%d", &child, &gen); err != nil {
		t.Fatal(err)
	}
	if gen != 2 {
		t.Errorf("child generation %d, want 2", gen)
	}
	p.Expect(fmt.Sprintf("EXIT pid=%d", parent))
	// The old generation was shut down by its successor, not by a signal:
	// no log line may say one came (fx logs "received signal" for every
	// Shutdown it is asked to do).
	if out := p.Output(); strings.Contains(out, "received signal") {
		t.Errorf("a log line reports a signal that never came:\n%s", out)
	}
	if got, want := get(t, addr), fmt.Sprintf("pid=%d\n", child); got != want {
		t.Errorf("GET / = %q, want %q", got, want)
	}
	stopLoads()
	if err := syscall.Kill(child, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.Expect(fmt.Sprintf("EXIT pid=%d", child))
	// Wait closes the pipe of the event lines, so it comes last.
	if code := p.Wait(); code != 0 {
		t.Errorf("old generation exited with %d", code)
	}
}
