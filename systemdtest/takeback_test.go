//go:build systemdtest && linux

package systemdtest

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// takeBackUnit is app.service with what a take-back needs: NotifyAccess=all
// (the old generation, not the main process when its successor dies, says
// MAINPID=) and -linger (the old generation stays after its drain).
func takeBackUnit(port string) string {
	return `[Unit]
DefaultDependencies=no
[Service]
Type=notify
NotifyAccess=all
RuntimeDirectory=takeback
ExecStart=/run/tftest/bin/app -addr 127.0.0.1:` + port + ` -control /run/takeback/control.sock -linger 5m
ExecReload=/run/tftest/bin/tableflipctl -socket /run/takeback/control.sock upgrade -from $MAINPID
ExecStop=/run/tftest/bin/tableflipctl -socket /run/takeback/control.sock stop
TimeoutStopSec=60
SyslogIdentifier=takeback
`
}

// runTakeBack: the new generation is SIGKILLed after a reload, under load.
// The old one, lingering, takes the service back: systemd's MainPID is it
// again, it serves, and the stop afterwards drains and succeeds.
func runTakeBack(t *testing.T, m *machine, addr string) {
	const svc = "takeback.service"
	if out, err := m.systemctl("start", svc); err != nil {
		t.Fatalf("start: %v: %s\n%s", err, out, m.journal(svc))
	}
	first := mainPID(t, m, svc)
	l := startLoad(addr, 4)
	if err := l.waitServed(first, 20); err != nil {
		t.Fatal(err)
	}
	if out, err := m.systemctl("reload", svc); err != nil {
		t.Fatalf("reload: %v: %s\n%s", err, out, m.journal(svc))
	}
	second := mainPID(t, m, svc)
	if second == first {
		t.Fatalf("MainPID still %d after the reload", first)
	}
	if err := l.waitServed(second, 20); err != nil {
		t.Fatal(err)
	}
	if out, err := m.run(10*time.Second, "kill", "-KILL", strconv.Itoa(second)); err != nil {
		t.Fatalf("kill -KILL %d: %v: %s", second, err, out)
	}
	waitJournal(t, m, svc, "taking the service back", 1)
	// The MAINPID= message follows the log line; systemd has no event to
	// wait on from here.
	deadline := time.Now().Add(30 * time.Second)
	for mainPID(t, m, svc) != first {
		if time.Now().After(deadline) {
			t.Fatalf("MainPID is %d 30s after the take-back, want %d\n%s", mainPID(t, m, svc), first, m.journal(svc))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := l.waitServed(first, 20); err != nil {
		t.Fatal(err)
	}
	l.stopping.Store(true)
	out, err := m.systemctl("stop", svc)
	st := l.stop()
	j := m.journal(svc)
	result := m.show(svc, "Result")
	t.Logf("take-back: %d requests, %d failed (in flight in the killed pid %d), %d serving pids; stop: %v; Result=%s",
		st.ok, st.failed, second, len(st.pids), err, result)
	if err != nil {
		t.Errorf("stop: %v: %s", err, out)
	}
	if result != "success" {
		t.Errorf("Result=%s, want success", result)
	}
	// The killed generation's requests in flight fail: at most one per
	// client.
	if st.failed > 4 {
		t.Errorf("%d failed requests, want at most the 4 clients' requests in flight: %v", st.failed, st.errors)
	}
	for _, bad := range []string{"stop-sigkill", "Killing process"} {
		if strings.Contains(j, bad) {
			t.Errorf("the journal says %q", bad)
		}
	}
	if t.Failed() {
		t.Logf("journal:\n%s", j)
	}
}
